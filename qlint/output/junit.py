"""JUnit XML, as GitLab (`artifacts:reports:junit`), Jenkins and other CI test reports read it:
one <testsuite> per file with findings, one failed <testcase> per finding; a clean run is
one passing testcase."""
from __future__ import annotations

from itertools import groupby
from typing import Sequence
from xml.etree import ElementTree

from qlint.finding import Finding


def render_junit(findings: Sequence[Finding]) -> str:
    suites = ElementTree.Element("testsuites", name="qlint", tests=str(max(len(findings), 1)),
                                 failures=str(len(findings)), errors="0")
    if not findings:
        suite = ElementTree.SubElement(suites, "testsuite", name="qlint", tests="1", failures="0",
                                       errors="0", skipped="0")
        ElementTree.SubElement(suite, "testcase", name="No findings", classname="qlint")
    for path, group in groupby(findings, key=lambda finding: finding.path):
        group = list(group)
        suite = ElementTree.SubElement(suites, "testsuite", name=path, tests=str(len(group)),
                                       failures=str(len(group)), errors="0", skipped="0")
        for finding in group:
            case = ElementTree.SubElement(
                suite, "testcase", name=f"{finding.code} {finding.name} at {finding.line}:{finding.column}",
                classname=path, file=path, line=str(finding.line))
            failure = ElementTree.SubElement(case, "failure", message=finding.message, type=finding.code)
            failure.text = f"{path}:{finding.line}:{finding.column}: {finding.code} {finding.name}: {finding.message}"
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"

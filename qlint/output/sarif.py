"""SARIF 2.1.0, as GitHub code scanning and other SARIF viewers read it.

https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
"""
from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Sequence
from urllib.parse import quote

from qlint import __version__
from qlint.finding import Finding
from qlint.output.docs import rule_markdown
from qlint.registry import Rule, all_rules

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/torch-qlint/"
SOURCE_ROOT = "%SRCROOT%"


def _help_text(rule: type[Rule]) -> str:
    return (
        f"{rule.explanation.strip()}\n\nExample:\n{rule.bad_example().strip()}\n\n"
        f"Use instead: {rule.fix.strip()}\n{rule.good_example().strip()}\n"
    )


def _descriptor(rule: type[Rule]) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": _help_text(rule), "markdown": rule_markdown(rule)},
        "defaultConfiguration": {"level": rule.severity},
    }


def _artifact_location(path: str) -> dict:
    """A relative path becomes a forward-slash URI reference below %SRCROOT% (the cwd)."""
    pure = PurePath(path)
    if pure.is_absolute():
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(pure.as_posix()), "uriBaseId": SOURCE_ROOT}


def _result(finding: Finding, rule_index: dict[str, int]) -> dict:
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index[finding.code],
        "level": finding.severity,
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact_location(finding.path),
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.column,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_column,
                    },
                }
            }
        ],
    }


def sarif_log(findings: Sequence[Finding]) -> dict:
    """The SARIF log object: every registered rule in the driver, one result per finding."""
    rules = list(all_rules().values())
    rule_index = {rule.code: index for index, rule in enumerate(rules)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "qlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_descriptor(rule) for rule in rules],
                    }
                },
                "originalUriBaseIds": {SOURCE_ROOT: {"uri": Path.cwd().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(finding, rule_index) for finding in findings],
            }
        ],
    }


def render_sarif(findings: Sequence[Finding]) -> str:
    return json.dumps(sarif_log(findings), indent=2) + "\n"

"""SARIF 2.1.0, as GitHub code scanning and other SARIF viewers read it.

https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html

Artifact URIs are relative to `%SRCROOT%`, which `originalUriBaseIds` sets to the project
root (the folder of the settings file, else the current directory); a file outside it
gets an absolute `file://` URI. Each result carries `partialFingerprints["qlint/v1"]`, a
fingerprint that survives lines moving (see `qlint.source.fingerprints`); GitHub computes
its own `primaryLocationLineHash`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from qlint import __version__
from qlint.finding import Finding
from qlint.output.docs import RULES_URL, rule_markdown, rule_url
from qlint.registry import Rule, all_rules
from qlint.source import Sources, fingerprints

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = RULES_URL.rsplit("/docs/", 1)[0]
SOURCE_ROOT = "%SRCROOT%"
FINGERPRINT = "qlint/v1"


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
        "helpUri": rule_url(rule.code),
        "defaultConfiguration": {"level": rule.severity},
    }


def _artifact_location(path: str, root: Path) -> dict:
    """A forward-slash URI reference below %SRCROOT% (the project root), or a file URI."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": SOURCE_ROOT}


def _result(finding: Finding, rule_index: dict[str, int], root: Path, fingerprint: str) -> dict:
    result = {
        "ruleId": finding.code,
        "ruleIndex": rule_index[finding.code],
        "level": finding.severity,
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact_location(finding.path, root),
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.column,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_column,
                    },
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT: fingerprint},
    }
    if finding.fix:  # the tier of the fix `qlint --fix` has for it (SARIF `fixes` would need the edits)
        result["properties"] = {"fix": finding.fix}
    return result


def sarif_log(findings: Sequence[Finding], root: Path, sources: Sources) -> dict:
    """The SARIF log object: every registered rule in the driver, one result per finding."""
    root = Path(os.path.abspath(root))
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
                "originalUriBaseIds": {SOURCE_ROOT: {
                    "uri": root.as_uri() + "/",
                    "description": {"text": "The project root: the folder of qlint's settings file, "
                                            "else the directory qlint ran in."},
                }},
                "columnKind": "unicodeCodePoints",
                "results": [_result(finding, rule_index, root, fingerprint)
                            for finding, fingerprint in zip(findings, fingerprints(findings, sources))],
            }
        ],
    }


def render_sarif(findings: Sequence[Finding], root: Path, sources: Sources) -> str:
    return json.dumps(sarif_log(findings, root, sources), indent=2) + "\n"

"""GitLab code quality report (`artifacts:reports:codequality`): a JSON list of issues with
description, check_name, fingerprint, severity and location (path, lines.begin).

https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
Paths are relative to `CI_PROJECT_DIR` when GitLab sets it (the repository's checkout),
else to the project root; fingerprints survive lines moving (see `qlint.source`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from qlint.finding import Finding
from qlint.registry import ERROR
from qlint.source import Sources, fingerprints

SEVERITY = {ERROR: "major"}  # GitLab: info, minor, major, critical, blocker
DEFAULT_SEVERITY = "minor"


def _relative(path: str, base: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def render_gitlab(findings: Sequence[Finding], root: Path, sources: Sources) -> str:
    base = Path(os.path.abspath(os.environ.get("CI_PROJECT_DIR") or root))
    issues = []
    for finding, fingerprint in zip(findings, fingerprints(findings, sources)):
        path = _relative(finding.path, base)
        issues.append({
            "type": "issue",
            "description": f"{finding.code} {finding.name}: {finding.message}",
            "check_name": finding.code,
            "fingerprint": hashlib.sha256(f"{path}\0{finding.code}\0{fingerprint}".encode()).hexdigest(),
            "severity": SEVERITY.get(finding.severity, DEFAULT_SEVERITY),
            "categories": ["Bug Risk"],
            "location": {"path": path, "lines": {"begin": finding.line, "end": finding.end_line}},
        })
    return json.dumps(issues, indent=2) + "\n"

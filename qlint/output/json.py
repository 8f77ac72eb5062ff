"""JSON: a list of `Finding.to_dict()` objects."""
from __future__ import annotations

import json
from typing import Sequence

from qlint.finding import Finding


def render_json(findings: Sequence[Finding]) -> str:
    return json.dumps([finding.to_dict() for finding in findings], indent=2) + "\n"

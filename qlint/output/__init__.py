"""Renderers for findings: text (default), json, sarif and github (workflow commands)."""
from __future__ import annotations

from typing import Sequence

from qlint.finding import Finding

FORMATS = ("text", "json", "sarif", "github")


def render(findings: Sequence[Finding], output_format: str) -> str:
    """The findings in `output_format`, one of FORMATS; modules load only when used."""
    if output_format == "text":
        from qlint.output.text import render_text

        return render_text(findings)
    if output_format == "json":
        from qlint.output.json import render_json

        return render_json(findings)
    if output_format == "sarif":
        from qlint.output.sarif import render_sarif

        return render_sarif(findings)
    if output_format == "github":
        from qlint.output.github import render_github

        return render_github(findings)
    raise ValueError(f"unknown output format {output_format!r}; expected one of {', '.join(FORMATS)}")

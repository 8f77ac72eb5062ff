"""Renderers for findings: text (default), full, json, sarif, github, gitlab and junit."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from qlint.finding import Finding
from qlint.source import Sources

FORMATS = ("text", "full", "json", "sarif", "github", "gitlab", "junit")


def render(findings: Sequence[Finding], output_format: str, *, root: Optional[Path] = None,
           sources: Optional[Sources] = None, colour: bool = False, fix_tiers: frozenset = frozenset()) -> str:
    """The findings in `output_format`, one of FORMATS; modules load only when used.
    `root` (default: the cwd) is the base of relative paths in sarif and gitlab; `sources`
    gives the files' text (code frames, fingerprints); text and full mark the findings
    whose fix is in `fix_tiers` (those --fix would remove)."""
    root = Path.cwd() if root is None else root
    sources = Sources() if sources is None else sources
    if output_format == "text":
        from qlint.output.text import render_text

        return render_text(findings, colour, fix_tiers)
    if output_format == "full":
        from qlint.output.text import render_full

        return render_full(findings, sources, colour, fix_tiers)
    if output_format == "json":
        from qlint.output.json import render_json

        return render_json(findings)
    if output_format == "sarif":
        from qlint.output.sarif import render_sarif

        return render_sarif(findings, root, sources)
    if output_format == "github":
        from qlint.output.github import render_github

        return render_github(findings)
    if output_format == "gitlab":
        from qlint.output.gitlab import render_gitlab

        return render_gitlab(findings, root, sources)
    if output_format == "junit":
        from qlint.output.junit import render_junit

        return render_junit(findings)
    raise ValueError(f"unknown output format {output_format!r}; expected one of {', '.join(FORMATS)}")

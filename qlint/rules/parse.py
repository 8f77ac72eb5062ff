"""QL000: a file qlint could not read, parse or analyze (reported by the engine)."""
from __future__ import annotations

from qlint.registry import ERROR, Rule, register


@register
class ParseError(Rule):
    code = "QL000"
    name = "parse-error"
    severity = ERROR
    summary = "A file that cannot be read or parsed, or that a rule failed on"
    explanation = (
        "qlint reports a file it cannot read (encoding) or parse (syntax) as a finding instead "
        "of stopping, so one broken file does not hide the others' results; an internal "
        "failure of a rule on a file is reported the same way, with its cause.")
    fix = "Fix the syntax error; report an internal failure to torch-qlint with the file."
    valid = ("def ok():\n    return 1\n",)
    invalid = ("def broken(x:  # expect: QL000\n    return 1\n", "x = 1\ny = = 2  # expect: QL000\n")

    def check(self, model):
        return iter(())

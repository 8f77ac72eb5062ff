"""`# noqa` directives: which findings they suppress, which of their codes are unused, and
how to add one (`qlint --add-noqa`).

- `x = a + b  # noqa: QL301` suppresses QL301 on its line; a bare `# noqa` every code.
- A comment starting `# qlint: noqa`, anywhere in a file, suppresses every finding of the
  file; `# qlint: noqa: QL301, QL401` those codes in the whole file.

Directives are read from comments (Python's tokenizer), so that `"# noqa"` in a string
suppresses nothing. Codes of other tools (`# noqa: F401, E731`) are kept and left alone.
This module imports no libcst: `--add-noqa` and the cache use it too.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

QL_CODE = re.compile(r"QL[0-9]+$")
_CODE_LIST = r"[A-Za-z]+[0-9]+(?:[\s,]*[A-Za-z]+[0-9]+)*"
# `# noqa` or `# noqa: A1, B2` (also `#noqa:A1 B2`); ruff's and flake8's syntax.
_LINE = re.compile(rf"#\s*noqa(?::\s*(?P<codes>{_CODE_LIST}))?", re.IGNORECASE)
# `# qlint: noqa` or `# qlint: noqa: QL301`, at the start of a comment.
_FILE = re.compile(rf"#\s*qlint\s*:\s*noqa(?::\s*(?P<codes>{_CODE_LIST}))?", re.IGNORECASE)


def _split_codes(text: Optional[str]) -> Optional[tuple[str, ...]]:
    return None if text is None else tuple(c.upper() for c in re.split(r"[\s,]+", text.strip()) if c)


@dataclass
class Directive:
    """One `# noqa` comment on a line."""

    line: int
    column: int  # 1-based column of the `#` of `# noqa`
    comment: str  # the whole comment the directive is in
    start: int  # where the directive starts and ends in `comment`
    end: int
    codes: Optional[tuple[str, ...]]  # None: a bare `# noqa`
    used: set = field(default_factory=set)  # codes that suppressed a finding

    def with_codes(self, codes: Iterable[str]) -> str:
        """The comment with the directive's codes replaced by `codes`; without codes the
        directive goes, with the text after it (it explained them), and '' is left when the
        comment was nothing else (`# type: ignore  # noqa: QL301` keeps `# type: ignore`)."""
        codes = list(codes)
        before = self.comment[: self.start].rstrip()
        if not codes:
            return before
        after = self.comment[self.end:]
        return (f"{before}  " if before else "") + f"# noqa: {', '.join(codes)}" + after


@dataclass
class Unused:
    """The QL codes of a directive that suppress nothing: unused, unknown or repeated."""

    directive: Directive
    unused: tuple[str, ...]
    unknown: tuple[str, ...]
    duplicated: tuple[str, ...]

    @property
    def message(self) -> str:
        parts = [f"{kind}: {', '.join(codes)}" for kind, codes in
                 (("unused", self.unused), ("unknown", self.unknown), ("duplicated", self.duplicated)) if codes]
        return f"unused `noqa` directive ({'; '.join(parts)}); remove the codes that suppress nothing"

    @property
    def replacement(self) -> str:
        """The comment once the codes are gone ('' when nothing is left of it)."""
        remove = {*self.unused, *self.unknown}
        return self.directive.with_codes(dict.fromkeys(c for c in self.directive.codes if c not in remove))


def comments(source: str) -> Iterator[tuple[int, int, str]]:
    """(line, 0-based column, text) of each comment; a line scan if the tokenizer fails."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.start[1], token.string
        return
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    for number, text in enumerate(source.splitlines(), 1):
        column = text.find("#")
        if column >= 0:
            yield number, column, text[column:]


class Noqa:
    """The directives of one file; `suppresses` records which codes were used."""

    def __init__(self, source: str):
        self.lines: dict[int, Directive] = {}
        self.file_exempt = False
        self.file_codes: tuple[str, ...] = ()
        if "noqa" not in source.lower():
            return
        for line, column, text in comments(source):
            file_directive = _FILE.match(text)
            if file_directive:
                codes = _split_codes(file_directive.group("codes"))
                if codes is None:
                    self.file_exempt = True
                else:
                    self.file_codes += codes
                continue
            match = _LINE.search(text)
            if match and line not in self.lines:
                self.lines[line] = Directive(line, column + 1 + match.start(), text, match.start(), match.end(),
                                             _split_codes(match.group("codes")))

    def suppresses(self, line: int, code: str) -> bool:
        if self.file_exempt or code in self.file_codes:
            return True
        directive = self.lines.get(line)
        if directive is None or (directive.codes is not None and code not in directive.codes):
            return False
        directive.used.add(code)
        return True

    def unused(self, known: Iterable[str], enabled: Iterable[str], self_code: str) -> Iterator[Unused]:
        """Directives with QL codes that suppressed nothing on their line: unknown codes,
        codes of enabled rules that found nothing there, repeated codes. Codes of rules
        not enabled for the file and other tools' codes are not judged; a directive naming
        `self_code` (the rule reporting these) is left alone."""
        known, enabled = set(known), set(enabled)
        for directive in self.lines.values():
            if not directive.codes or self_code in directive.codes:
                continue
            ql_codes = [code for code in directive.codes if QL_CODE.match(code)]
            unknown = tuple(code for code in dict.fromkeys(ql_codes) if code not in known)
            unused = tuple(code for code in dict.fromkeys(ql_codes)
                           if code in known and code in enabled and code not in directive.used)
            duplicated = tuple(code for code in dict.fromkeys(ql_codes) if ql_codes.count(code) > 1)
            if unknown or unused or duplicated:
                yield Unused(directive, unused, unknown, duplicated)


# ----- --add-noqa ---------------------------------------------------------------------------
def add_directives(source: str, codes_by_line: dict[int, set[str]]) -> tuple[str, int, list[int]]:
    """`source` with `# noqa: CODES` at the end of each line of `codes_by_line` (merged into
    a directive already there); returns the new source, how many lines changed, and the
    lines that could not take a comment (they end inside a string)."""
    lines = source.splitlines(keepends=True)
    noqa = Noqa(source)
    in_string = _lines_ending_in_strings(source)
    changed, skipped = 0, []
    for line, codes in sorted(codes_by_line.items()):
        if not 0 < line <= len(lines):
            continue
        text = lines[line - 1]
        body = text.rstrip("\r\n")
        ending = text[len(body):]
        directive = noqa.lines.get(line)
        if directive is not None and directive.codes is None:
            continue  # a bare `# noqa` suppresses them already
        if line in in_string:
            skipped.append(line)
            continue
        if directive is not None:
            merged = list(directive.codes)
            merged += sorted(code for code in codes if code not in merged)
            at = directive.column - 1
            comment_end = at - directive.start + len(directive.comment)
            rest = directive.comment[directive.end:]
            body = body[:at] + f"# noqa: {', '.join(merged)}" + rest + body[comment_end:]
        else:
            body = f"{body}  # noqa: {', '.join(sorted(codes))}"
        lines[line - 1] = body + ending
        changed += 1
    return "".join(lines), changed, skipped


def _lines_ending_in_strings(source: str) -> set[int]:
    """Lines whose end lies inside a multi-line string (a comment there would be text)."""
    inside = set()
    fstring_starts = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0], token.end[0]))
            elif token.type == getattr(tokenize, "FSTRING_START", None):  # Python 3.12+
                fstring_starts.append(token.start[0])
            elif token.type == getattr(tokenize, "FSTRING_END", None) and fstring_starts:
                inside.update(range(fstring_starts.pop(), token.end[0]))
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return inside

"""The `qlint` command: `qlint [PATH ...]` lints, `qlint rule CODE` explains a rule,
`qlint report MODULE:FACTORY --input SHAPE` quantizes a model and reports on it (qlint/report_cli.py).

Exit status: 0 no findings, 1 findings (0 with --exit-zero; with --diff, 1 when there is a
diff), 2 usage or configuration error, a file --fix could not write, or an internal error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from qlint import __version__
from qlint.output import FORMATS

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

_STATISTICS_FORMATS = ("text", "json")


def _codes(text: str) -> list[str]:
    """`QL301,ql4` → ["QL301", "QL4"] (codes are case-insensitive on the command line)."""
    return [code.strip().upper() for code in text.split(",") if code.strip()]


def _patterns(text: str) -> list[str]:
    return [pattern.strip() for pattern in text.split(",") if pattern.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qlint",
        description="Find what breaks PyTorch eager-mode quantization, before it costs a training run.",
        epilog="`qlint rule CODE` explains a rule; `qlint rule --all` lists them; "
        "`qlint report MODULE:FACTORY --input SHAPE` quantizes a model and writes a per-layer report. "
        "Exit status: 0 no findings, 1 findings, 2 usage or configuration error.",
    )
    parser.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH",
                        help="files or directories to lint (default: .)")
    parser.add_argument("--select", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable (replaces the config's; `QL` = all)")
    parser.add_argument("--extend-select", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable in addition to the selected ones")
    parser.add_argument("--ignore", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to disable (replaces the config's)")
    parser.add_argument("--extend-ignore", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to disable in addition to the ignored ones")
    parser.add_argument("--exclude", type=_patterns, action="extend", metavar="PATTERNS",
                        help="comma-separated globs to skip (replaces the config's and the defaults)")
    parser.add_argument("--extend-exclude", type=_patterns, action="extend", metavar="PATTERNS",
                        help="comma-separated globs to skip, added to the config's")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file: a pyproject.toml ([tool.qlint]) or a toml with the settings at top level")
    parser.add_argument("--stdin-filename", type=Path, metavar="PATH",
                        help="with `-` as the path: the file the source on standard input is "
                        "(settings, excludes and per-file-ignores apply by it; findings name it)")
    parser.add_argument("--output-format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument("--statistics", action="store_true",
                        help="print the number of findings per rule instead of the findings (text or json)")
    quiet = parser.add_mutually_exclusive_group()
    quiet.add_argument("-q", "--quiet", action="store_true",
                       help="print the findings only: no summary line, no notes on standard error")
    quiet.add_argument("--silent", action="store_true",
                       help="print nothing; the exit status tells whether there are findings")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--fix", action="store_true",
                        help="rewrite the files with the safe fixes (findings marked [*]), then report "
                        "what remains; with `-`, print the fixed source")
    unsafe = parser.add_mutually_exclusive_group()
    unsafe.add_argument("--unsafe-fixes", action="store_true", default=None,
                        help="apply the unsafe fixes too (review them: they change the module tree, or "
                        "float outputs in cases qlint cannot rule out; `qlint rule CODE` says why); "
                        "`unsafe-fixes` in [tool.qlint]")
    unsafe.add_argument("--no-unsafe-fixes", action="store_false", dest="unsafe_fixes",
                        help="apply the safe fixes only, whatever the settings say")
    parser.add_argument("--diff", action="store_true",
                        help="print the diff of what --fix would change on standard output and write "
                        "nothing (exit 1 if there is one); the report goes to standard error")
    parser.add_argument("--show-fixes", action="store_true",
                        help="list the fixes made (or, with --diff, that would be) per file and rule")
    parser.add_argument("--add-noqa", action="store_true",
                        help="add `# noqa: CODE` to every line with findings (merged into a `# noqa` "
                        "already there), to adopt qlint on existing code")
    parser.add_argument("--baseline", type=Path, metavar="FILE",
                        help="report only the findings not in FILE (written by --write-baseline); "
                        "exit 0 when every finding is in it")
    parser.add_argument("--write-baseline", type=Path, metavar="FILE",
                        help="write every finding to FILE as the baseline, and exit 0")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the result cache (.qlint_cache/ at the project root)")
    parser.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                        help="worker processes (default: one per core, as needed)")
    parser.add_argument("--version", action="version", version=f"qlint {__version__}")
    return parser


def _rule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlint rule", description="Explain a rule, or list them all.")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("code", nargs="?", help="a rule code, such as QL301")
    choice.add_argument("--all", action="store_true", help="list every rule: code, name, severity, fix tier, summary")
    return parser


def _error(message: str) -> int:
    print(f"qlint: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _rule_command(argv: list[str]) -> int:
    args = _rule_parser().parse_args(argv)
    from qlint.output.docs import rule_markdown
    from qlint.registry import all_rules

    rules = all_rules()
    if args.all:
        name_width = max((len(rule.name) for rule in rules.values()), default=0)
        for rule in rules.values():
            print(f"{rule.code}  {rule.name:<{name_width}}  {rule.severity:<7}  {rule.fix_safety or '-':<6}  "
                  f"{rule.summary}")
        return EXIT_CLEAN
    rule = rules.get(args.code.upper())
    if rule is None:
        return _error(f"unknown rule code {args.code!r}; `qlint rule --all` lists the rules")
    print(rule_markdown(rule), end="")
    return EXIT_CLEAN


def _check_command(argv: list[str]) -> int:
    parser = _check_parser()
    args = parser.parse_args(argv)
    if args.statistics and args.output_format not in _STATISTICS_FORMATS:
        parser.error(f"--statistics works with --output-format text or json, not {args.output_format}")
    stdin = Path("-") in args.paths
    if stdin and len(args.paths) > 1:
        parser.error("`-` (standard input) cannot be mixed with other paths")
    if args.stdin_filename is not None and not stdin:
        parser.error("--stdin-filename needs `-` as the path")
    if stdin and (args.add_noqa or args.write_baseline):
        parser.error("--add-noqa and --write-baseline work on files, not on standard input")
    if args.add_noqa and (args.fix or args.diff or args.write_baseline or args.baseline):
        parser.error("--add-noqa cannot be combined with --fix, --diff or a baseline")

    from qlint.config import ConfigError, load_config

    start = args.stdin_filename if stdin else args.paths[0]
    try:
        config = load_config(
            config_file=args.config,
            start=start if start is not None else Path.cwd(),
            select=args.select,
            extend_select=args.extend_select,
            ignore=args.ignore,
            extend_ignore=args.extend_ignore,
            exclude=args.exclude,
            extend_exclude=args.extend_exclude,
        )
    except ConfigError as error:
        return _error(str(error))
    notes = _Notes(quiet=args.quiet or args.silent)
    fixes = _Fixes(args, config)

    from qlint.source import Sources

    if stdin:
        findings, sources = _lint_stdin(args, config, fixes)
        if findings is None:
            return EXIT_CLEAN  # excluded: nothing to say
    else:
        from qlint.discovery import discover

        try:
            files = discover(args.paths, config)
        except FileNotFoundError as error:
            return _error(str(error))
        if not files:
            notes.warn("no Python files found under the given paths")
        if fixes.enabled:
            fixes.fix_files(files, config)
        findings = _lint_files(files, config, args, notes)
        sources = Sources()
        if args.add_noqa:
            return _add_noqa(findings, notes)
    if args.write_baseline:
        from qlint.baseline import write_baseline

        write_baseline(args.write_baseline, findings, config.root, sources)
        notes.say(f"wrote {len(findings)} findings to the baseline {args.write_baseline}")
        return EXIT_CLEAN
    if args.baseline:
        from qlint.baseline import BaselineError, load_baseline, new_findings

        try:
            baseline = load_baseline(args.baseline)
        except BaselineError as error:
            return _error(str(error))
        known = len(findings)
        findings = new_findings(findings, baseline, config.root, sources)
        if known > len(findings):
            notes.say(f"{known - len(findings)} findings are in the baseline {args.baseline}")
    if not args.silent:
        _report(findings, args, config, sources, fixes, stream=sys.stderr if fixes.stdout_taken else sys.stdout)
    if fixes.failed:
        return EXIT_ERROR
    if args.diff:  # as ruff: the diff, not the findings, decides
        return EXIT_FINDINGS if fixes.fixed and not args.exit_zero else EXIT_CLEAN
    return EXIT_FINDINGS if findings and not args.exit_zero else EXIT_CLEAN


class _Fixes:
    """The run's fixing: which tiers (--unsafe-fixes, else the settings' `unsafe-fixes`),
    whether fixes are written (--fix) or shown as a diff on standard output (--diff), and
    what was (or would be) fixed, per file and rule code."""

    def __init__(self, args, config):
        from qlint.registry import fix_tiers

        self.unsafe = config.unsafe_fixes if args.unsafe_fixes is None else args.unsafe_fixes
        self.tiers = fix_tiers(self.unsafe)
        self.diff = args.diff
        self.enabled = args.fix or args.diff
        self.stdout_taken = self.enabled and (args.diff or Path("-") in args.paths)
        self.fixed: dict[str, dict[str, int]] = {}
        self.failed = False

    def fix_files(self, files, config) -> None:
        """Fix the files (--fix) or print the diff of the fixes (--diff); a file that cannot
        be fixed or written is an error on standard error, and the run goes on."""
        from qlint.engine import compute_fixes, fix_paths

        result = (compute_fixes if self.diff else fix_paths)(files, config, self.unsafe)
        for path, reason in sorted(result.failed.items()):
            what = "apply the fixes to" if self.diff else "write the fixes to"
            print(f"qlint: error: could not {what} {path}: {reason}; the file is unchanged", file=sys.stderr)
        self.failed = bool(result.failed)
        for path, (before, after) in sorted(result.changes.items()):
            self.done(str(path), result.fixed[path], before, after)

    def done(self, path: str, codes: dict[str, int], before: bytes, after: bytes) -> None:
        self.fixed[path] = codes
        if self.diff:
            from qlint.output.diff import unified_diff

            sys.stdout.flush()
            sys.stdout.buffer.write(unified_diff(path, before, after))
            sys.stdout.buffer.flush()

    @property
    def count(self) -> int:
        return sum(sum(codes.values()) for codes in self.fixed.values())


class _Notes:
    """What qlint says on standard error besides the findings (nothing with -q/--silent)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"qlint: {message}", file=sys.stderr)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"qlint: warning: {message}", file=sys.stderr)


def _lint_files(files, config, args, notes: _Notes):
    """The findings of `files`, through the result cache unless --no-cache."""
    if not args.no_cache and files:
        from qlint.cache import CacheUnavailable, ResultCache, lint_cached

        try:
            cache = ResultCache(config.root, config)
        except CacheUnavailable as error:
            notes.warn(f"{error}; linting without it (--no-cache silences this)")
        else:
            return lint_cached(files, config, cache, jobs=args.jobs)
    from qlint.engine import lint_paths

    return lint_paths(files, config, jobs=args.jobs)


def _lint_stdin(args, config, fixes: _Fixes):
    """Findings for the source on standard input (None when its --stdin-filename is
    excluded), and its text for the output. With --fix the fixed source goes to stdout and
    the findings are those left; with --diff the diff goes there and the findings are the
    source's."""
    from qlint.engine import lint_text
    from qlint.source import Sources, decode

    data = sys.stdin.buffer.read()
    path = args.stdin_filename or Path("-")
    if args.stdin_filename is not None and config.is_excluded(path):
        if args.fix and not args.diff:
            sys.stdout.buffer.write(data)
        return None, None
    codes = config.enabled_codes(path)
    if not fixes.enabled:
        return lint_text(data, path, codes).findings, Sources({str(path): decode(data)})
    fixed = lint_text(data, path, codes, fix=True, unsafe=fixes.unsafe)
    if fixed.fixed:
        fixes.done(str(path), fixed.fixed, data, fixed.source)
    if args.diff:
        return lint_text(data, path, codes).findings, Sources({str(path): decode(data)})
    sys.stdout.buffer.write(fixed.source)
    sys.stdout.flush()
    return fixed.findings, Sources({str(path): decode(fixed.source)})


def _report(findings, args, config, sources, fixes: _Fixes, stream) -> None:
    """The findings in the chosen format on `stream`; in text formats (unless -q) the
    --show-fixes list, the summary line and what --fix would fix."""
    from qlint.output.text import use_colour

    colour = use_colour(stream)
    if args.statistics:
        from qlint.output.statistics import render_statistics

        stream.write(render_statistics(findings, args.output_format, fixes.tiers))
        return
    from qlint.output import render

    stream.write(render(findings, args.output_format, root=config.root, sources=sources, colour=colour,
                        fix_tiers=fixes.tiers))
    if args.output_format not in ("text", "full"):
        return
    from qlint.output.text import fixable_line, fixes_list, summary_line

    if args.show_fixes and fixes.fixed:
        from qlint.registry import all_rules

        names = {code: rule.name for code, rule in all_rules().items()}
        stream.write("\n" + fixes_list(fixes.fixed, names, applied=not fixes.diff, colour=colour) + "\n")
    if not args.quiet:
        print(summary_line(findings, fixed=0 if fixes.diff else fixes.count), file=stream)
        footer = fixable_line(findings, fixes.unsafe, colour)
        if footer:
            print(footer, file=stream)


def _add_noqa(findings, notes: _Notes) -> int:
    """Add `# noqa: CODES` to the lines with findings (not QL000: a file that does not parse
    cannot take a directive)."""
    from collections import defaultdict

    from qlint.noqa import add_directives
    from qlint.source import decode

    by_file: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for finding in findings:
        if finding.code != "QL000":
            by_file[finding.path][finding.line].add(finding.code)
    added = 0
    for path, lines in sorted(by_file.items()):
        data = Path(path).read_bytes()
        text = decode(data)
        encoding = _encoding(data)
        new_text, changed, skipped = add_directives(text, lines)
        if changed:
            from qlint.files import write_atomically

            write_atomically(Path(path), new_text.encode(encoding))
            added += changed
        for line in skipped:
            notes.warn(f"{path}:{line}: the line ends inside a string; add its `# noqa` by hand")
    notes.say(f"added {added} noqa directive{'' if added == 1 else 's'}")
    return EXIT_CLEAN


def _encoding(data: bytes) -> str:
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return "utf-8"
    return encoding


def main(argv: Sequence[str] | None = None) -> int:
    """Run qlint on `argv` (default: the command line) and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["rule"]:
            return _rule_command(arguments[1:])
        if arguments[:1] == ["report"]:  # the only subcommand that imports torch
            from qlint.report_cli import report_command

            return report_command(arguments[1:])
        return _check_command(arguments)
    except SystemExit as exit:  # argparse: --help, --version (0) and usage errors (2)
        return exit.code if isinstance(exit.code, int) else EXIT_ERROR
    except Exception:  # a bug in qlint: exit 2, never 1 (which means findings)
        import traceback

        traceback.print_exc()
        print(f"qlint: internal error (qlint {__version__}); please report it with the traceback above",
              file=sys.stderr)
        return EXIT_ERROR

"""The `qlint` command: `qlint [PATH ...]` lints, `qlint rule CODE` explains a rule.

Exit status: 0 no findings, 1 findings (0 with --exit-zero), 2 usage or configuration error,
a file --fix could not write, or an internal error.
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
    """`QL301,QL4` → ["QL301", "QL4"]."""
    return [code.strip() for code in text.split(",") if code.strip()]


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
        epilog="`qlint rule CODE` explains a rule; `qlint rule --all` lists them. "
        "Exit status: 0 no findings, 1 findings, 2 usage or configuration error.",
    )
    parser.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH",
                        help="files or directories to lint (default: .)")
    parser.add_argument("--select", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable (replaces the config's; `QL` = all)")
    parser.add_argument("--ignore", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to disable (replaces the config's)")
    parser.add_argument("--exclude", type=_patterns, action="extend", metavar="PATTERNS",
                        help="comma-separated globs to skip (replaces the config's and the defaults)")
    parser.add_argument("--extend-exclude", type=_patterns, action="extend", metavar="PATTERNS",
                        help="comma-separated globs to skip, added to the config's")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file: a pyproject.toml ([tool.qlint]) or a toml with the settings at top level")
    parser.add_argument("--output-format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument("--statistics", action="store_true",
                        help="print the number of findings per rule instead of the findings (text or json)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--fix", action="store_true",
                        help="rewrite the files to fix what can be fixed (`qlint rule --all` says which "
                        "rules), then report what remains")
    parser.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                        help="worker processes (default: one per core, as needed)")
    parser.add_argument("--version", action="version", version=f"qlint {__version__}")
    return parser


def _rule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlint rule", description="Explain a rule, or list them all.")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("code", nargs="?", help="a rule code, such as QL301")
    choice.add_argument("--all", action="store_true", help="list every rule")
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
            print(f"{rule.code}  {rule.name:<{name_width}}  {rule.severity:<7}  {rule.summary}")
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

    from qlint.config import ConfigError, load_config
    from qlint.discovery import discover

    try:
        config = load_config(
            config_file=args.config,
            start=args.paths[0],
            select=args.select,
            ignore=args.ignore,
            exclude=args.exclude,
            extend_exclude=args.extend_exclude,
        )
        files = discover(args.paths, config)
    except (ConfigError, FileNotFoundError) as error:
        return _error(str(error))
    if not files:
        print("qlint: warning: no Python files found under the given paths", file=sys.stderr)

    from qlint.engine import fix_paths, lint_paths

    fix_failed = False
    if args.fix:
        result = fix_paths(files, config)
        for path, count in sorted(result.fixed.items()):
            print(f"qlint: fixed {count} in {path}", file=sys.stderr)
        for path, reason in sorted(result.failed.items()):
            print(f"qlint: error: could not write the fixes to {path}: {reason}; the file is unchanged",
                  file=sys.stderr)
        fix_failed = bool(result.failed)
    findings = lint_paths(files, config, jobs=args.jobs)
    if args.statistics:
        from qlint.output.statistics import render_statistics

        sys.stdout.write(render_statistics(findings, args.output_format))
    else:
        from qlint.output import render

        sys.stdout.write(render(findings, args.output_format))
        if args.output_format == "text":
            from qlint.output.text import summary_line

            print(summary_line(findings))
    if fix_failed:
        return EXIT_ERROR
    return EXIT_FINDINGS if findings and not args.exit_zero else EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    """Run qlint on `argv` (default: the command line) and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["rule"]:
            return _rule_command(arguments[1:])
        return _check_command(arguments)
    except SystemExit as exit:  # argparse: --help, --version (0) and usage errors (2)
        return exit.code if isinstance(exit.code, int) else EXIT_ERROR
    except Exception:  # a bug in qlint: exit 2, never 1 (which means findings)
        import traceback

        traceback.print_exc()
        print(f"qlint: internal error (qlint {__version__}); please report it with the traceback above",
              file=sys.stderr)
        return EXIT_ERROR

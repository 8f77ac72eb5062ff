"""Peak memory of `qlint` over a whole tree against linting its largest file alone.

    python benchmarks/bench_memory.py /path/to/site-packages [--jobs 2] [--skip site-packages]

Runs the `qlint` next to this interpreter twice, as a user would (`--output-format json`):
on the tree's largest .py file, then on the tree. RSS is sampled every 50 ms from /proc, for
the largest single process and for the whole process tree (the parent and its workers).
Also says whether qlint exited 0 or 1 without a traceback, and how many files got QL000.
Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    return children


def _rss(root: int) -> tuple[int, int]:
    """(largest process, whole tree) resident bytes of `root` and its descendants."""
    children, stack, total, largest = _children(), [root], 0, 0
    while stack:
        pid = stack.pop()
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
        total, largest = total + rss, max(largest, rss)
        stack.extend(children.get(pid, []))
    return largest, total


def measure(arguments: list[str]) -> dict:
    qlint = str(Path(sys.executable).with_name("qlint"))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen([qlint, "--output-format", "json", *arguments], stdout=out, stderr=err)
        largest = total = 0
        while process.poll() is None:
            one, tree = _rss(process.pid)
            largest, total = max(largest, one), max(total, tree)
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        findings, stderr = out.read(), err.read()
    try:
        parsed = json.loads(findings)
    except json.JSONDecodeError:
        parsed = []
    ql000 = Counter(f["message"].split(":")[0] for f in parsed if f["code"] == "QL000")
    return {"status": process.returncode, "seconds": seconds, "largest": largest, "tree": total,
            "traceback": "Traceback" in stderr, "findings": len(parsed),
            "files_with_findings": len({f["path"] for f in parsed}), "ql000": dict(ql000)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="a folder name to leave out (qlint --extend-exclude NAME)")
    args = parser.parse_args()
    args.extra = [option for name in args.skip for option in ("--extend-exclude", name)]
    files = [p for p in args.tree.rglob("*.py") if p.is_file() and not set(args.skip) & set(p.parts)]
    biggest = max(files, key=lambda p: p.stat().st_size)
    alone = measure([str(biggest), *args.extra])
    whole = measure([str(args.tree), "--jobs", str(args.jobs), *args.extra])
    mib = 2 ** 20
    print(f"largest file {biggest} ({biggest.stat().st_size:,} bytes) alone: {alone['seconds']:.1f} s, "
          f"peak RSS {alone['largest'] / mib:.0f} MiB")
    print(f"tree {args.tree} ({len(files)} .py files), {args.jobs} jobs: exit {whole['status']}, "
          f"{whole['seconds']:.1f} s, traceback: {'yes' if whole['traceback'] else 'no'}, "
          f"{whole['findings']} findings in {whole['files_with_findings']} files, QL000: {whole['ql000']}")
    print(f"peak RSS: largest process {whole['largest'] / mib:.0f} MiB "
          f"({whole['largest'] / alone['largest']:.2f}x the largest file alone), "
          f"whole process tree {whole['tree'] / mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

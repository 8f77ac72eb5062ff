"""`qlint --fix --unsafe-fixes` on whole real trees: torch's `ao/` and `nn/` (from the installed
torch) and timm's `models/`, each copied to a temporary directory first.

Per tree: files, files changed, fixes applied per rule code, changed files that no longer
parse (must be 0), fixes a second run still applies (must be 0), and the time of the first run.

    python benchmarks/fix_trees.py [--timm /work/realcode/timm/timm/models] [--keep DIR] [TREE ...]

Trees given as arguments (examples/, say) are fixed the same way, after the three.

Recorded (torch 2.13.0, timm 1.0.31, branch fixproof; details in benchmarks/fix_review.md):
torch/ao 160 files, 1 changed (QL302 1); torch/nn 136 files, 16 changed (QL301 3, QL505 23);
timm/models 119 files, 85 changed, 621 fixes (QL301 475, QL302 83, QL201 48, QL303 6, QL203 5,
QL401 3, QL101 1); every changed file parses, a second run applies 0 fixes in each tree.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from qlint.config import load_config
from qlint.engine import fix_paths



def _trees(timm: Path) -> dict[str, Path]:
    import importlib.util

    torch_dir = Path(importlib.util.find_spec("torch").origin).parent  # no torch import needed
    return {"torch/ao": torch_dir / "ao", "torch/nn": torch_dir / "nn", "timm/models": timm}


def fix_tree(name: str, source: Path, work: Path) -> dict:
    copy = work / name.replace("/", "_")
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    files = sorted(copy.rglob("*.py"))
    config = load_config(start=copy)
    started = time.perf_counter()
    first = fix_paths(files, config, unsafe=True)
    seconds = time.perf_counter() - started
    unparsable = []
    for path in first.fixed:
        try:
            ast.parse(path.read_bytes())
        except SyntaxError as error:
            unparsable.append(f"{path.relative_to(copy)}: {error}")
    second = fix_paths(files, config, unsafe=True)
    codes = sum((Counter(v) for v in first.fixed.values()), Counter())
    return {
        "tree": name, "files": len(files), "changed": len(first.fixed), "fixes": first.count,
        "codes": dict(sorted(codes.items())), "failed": {str(p.relative_to(copy)): why for p, why in first.failed.items()},
        "unparsable": unparsable, "second_run_fixes": second.count,
        "second_run_files": sorted(str(p.relative_to(copy)) for p in second.fixed), "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm", type=Path, default=Path("/work/realcode/timm/timm/models"))
    parser.add_argument("--keep", type=Path, help="fix the copies under DIR and keep them")
    parser.add_argument("trees", type=Path, nargs="*", help="more trees to copy and fix")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="qlint-fix-trees-"))
    work.mkdir(parents=True, exist_ok=True)
    trees = {**_trees(args.timm), **{str(tree): tree for tree in args.trees}}
    rows = [fix_tree(name, path, work) for name, path in trees.items()]
    print(f"{'tree':<12} {'files':>5} {'changed':>7} {'fixes':>5} {'unparsable':>10} {'2nd run':>7} {'s':>6}  fixes by code")
    for row in rows:
        codes = ", ".join(f"{code} {n}" for code, n in row["codes"].items())
        print(f"{row['tree']:<12} {row['files']:>5} {row['changed']:>7} {row['fixes']:>5} "
              f"{len(row['unparsable']):>10} {row['second_run_fixes']:>7} {row['seconds']:>6.1f}  {codes}")
    for row in rows:
        for line in row["unparsable"]:
            print(f"UNPARSABLE {row['tree']}/{line}")
        for path in row["second_run_files"]:
            print(f"NOT IDEMPOTENT {row['tree']}/{path}")
        for path, why in row["failed"].items():
            print(f"FAILED {row['tree']}/{path}: {why}")
    if not args.keep:
        shutil.rmtree(work)
    bad = any(row["unparsable"] or row["second_run_fixes"] for row in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

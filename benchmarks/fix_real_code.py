"""`qlint --fix --unsafe-fixes` on a copy of a real source tree: how many fixes per rule, whether
every changed file still parses, and whether a second run changes nothing. Nothing is written
outside the copy.

    python benchmarks/fix_real_code.py /work/realcode/timm/timm/models [--safe]
"""
from __future__ import annotations

import argparse
import ast
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

from qlint.config import load_config
from qlint.discovery import discover
from qlint.engine import FixResult, fix_paths, lint_paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", type=Path)
    parser.add_argument("--safe", action="store_true", help="safe fixes only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / args.tree.name
        shutil.copytree(args.tree, copy)
        config = load_config(start=copy)
        files = sorted(discover([copy], config))
        before = {p: p.read_bytes() for p in files}
        findings = lint_paths(files, config)
        start = time.process_time()
        result = fix_paths(files, config, unsafe=not args.safe)
        seconds = time.process_time() - start
        changed = [p for p in files if p.read_bytes() != before[p]]
        broken = []
        for path in changed:
            try:
                ast.parse(path.read_bytes())
            except SyntaxError as error:
                broken.append(f"{path.relative_to(copy)}: {error}")
        after = lint_paths(files, config)
        second = fix_paths(files, config, unsafe=not args.safe)
        fixable = collections.Counter(f.code for f in findings if f.fix and (f.fix == "safe" or not args.safe))
        left = collections.Counter(f.code for f in after if f.fix and (f.fix == "safe" or not args.safe))
        print(f"{len(files)} files, {len(changed)} changed, {result.count} fixes applied "
              f"({seconds:.1f} CPU s in fix_paths), {len(result.failed)} failed")
        print("fixable findings before, by rule:", dict(sorted(fixable.items())))
        print("findings still marked fixable after:", dict(sorted(left.items())))
        print("changed files that no longer parse:", broken or "none")
        print("second run:", "changes nothing" if second == FixResult() else f"changed {second.fixed}")
        for path, reason in result.failed.items():
            print("failed:", path.relative_to(copy), reason)
        return 1 if broken or second != FixResult() or result.failed else 0


if __name__ == "__main__":
    sys.exit(main())

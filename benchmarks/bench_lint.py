"""qlint against a bare `libcst.parse_module` of the same files, same cores, one run; then
the `qlint` command's whole process, cold (no cache) against warm (every result cached).

    pip download --no-deps timm -d /tmp/timm && unzip -q /tmp/timm/timm-*.whl -d /tmp/timm/src
    python benchmarks/bench_lint.py /tmp/timm/src/timm/models [--jobs 2] [--repeat 3]

Prints the best of `--repeat` runs of each and their ratios (the aims: at most 2x the bare
parse; a warm run under 10% of a cold one). Timings on shared machines vary run to run;
the ratio within one run is the figure. The command runs in a temporary folder, where its
cache goes (`.qlint_cache/` at the working directory when no settings file is found).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qlint.engine import _start_method  # the same process start-up as qlint's workers


def _parse_share(paths: list[str]) -> int:
    import libcst

    for path in paths:
        libcst.parse_module(Path(path).read_bytes())
    return len(paths)


def bare_parse(files: list[Path], jobs: int) -> float:
    """Parse every file with libcst in `jobs` processes, balanced by size as qlint does."""
    shares = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for path in sorted(files, key=lambda p: p.stat().st_size, reverse=True):
        i = loads.index(min(loads))
        shares[i].append(str(path))
        loads[i] += path.stat().st_size
    start = time.perf_counter()
    if jobs == 1:
        _parse_share(shares[0])
    else:
        with multiprocessing.get_context(_start_method()).Pool(jobs) as pool:
            pool.map(_parse_share, shares)
    return time.perf_counter() - start


def qlint_run(files: list[Path], jobs: int) -> tuple[float, int]:
    from qlint.config import load_config
    from qlint.engine import lint_paths

    config = load_config(start=files[0].parent)
    start = time.perf_counter()
    findings = lint_paths(files, config, jobs=jobs)
    return time.perf_counter() - start, len(findings)


def command_run(corpus: Path, jobs: int, folder: Path) -> float:
    """Wall time of one whole `qlint CORPUS` process started in `folder`."""
    qlint = shutil.which("qlint", path=os.path.dirname(sys.executable)) or shutil.which("qlint")
    start = time.perf_counter()
    result = subprocess.run([qlint, str(corpus.resolve()), "--jobs", str(jobs), "--silent"], cwd=folder)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"qlint failed with status {result.returncode}")
    return elapsed


def cold_and_warm(corpus: Path, jobs: int, repeat: int) -> tuple[float, float]:
    """Best cold run (a fresh folder: no cache) and best warm run (the same folder again)."""
    colds, warms = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="qlint-bench-") as folder:
            colds.append(command_run(corpus, jobs, Path(folder)))
            warms.append(min(command_run(corpus, jobs, Path(folder)) for _ in range(3)))
    return min(colds), min(warms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = sorted(args.corpus.rglob("*.py"))
    lines = sum(len(f.read_bytes().splitlines()) for f in files)
    parse_times, lint_times, found = [], [], 0
    for _ in range(args.repeat):  # interleaved, so that load changes hit both alike
        parse_times.append(bare_parse(files, args.jobs))
        elapsed, found = qlint_run(files, args.jobs)
        lint_times.append(elapsed)
    parse, lint = min(parse_times), min(lint_times)
    print(f"{len(files)} files, {lines} lines, {args.jobs} jobs, best of {args.repeat}")
    print(f"bare libcst.parse_module: {parse:.2f} s")
    print(f"qlint (parse + model + rules + positions): {lint:.2f} s, {found} findings")
    print(f"ratio: {lint / parse:.2f}x the bare parse")
    cold, warm = cold_and_warm(args.corpus, args.jobs, args.repeat)
    print(f"qlint command, whole process: cold {cold:.2f} s, warm {warm:.2f} s "
          f"(warm = {100 * warm / cold:.1f}% of cold; the aim: under 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

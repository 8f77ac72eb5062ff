"""quant_report: its cost on a ResNet-18-sized model, with and without the sensitivity sweep,
next to one forward pass of the prepared model.

    python benchmarks/bench_report.py [--repeat 3] [--size 224] [--engine x86] [--threads 1]

The model is bench_parity.py's ResNet-18 layout (torchvision is not installable here),
prepared for PTQ (2 calibration batches) and QAT (2 SGD steps, then observers off). Per
repetition, in one process: one forward pass of the float model (fused, eval, no grad;
the prepared PTQ model's own forward also runs its HistogramObservers), the report without
the sweep, with a sweep capped at 10 layers, and with the full sweep. Prints the medians in
seconds and, per repetition, in float forward passes (the machine's load varies from one
minute to the next: the ratios measured side by side are the figures to compare).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.ao.quantization as tq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parity import ResNet18, prepared  # noqa: E402

from qlint.runtime import quant_report  # noqa: E402


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--engine", default="x86")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: steadier on a shared machine)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, args.size, args.size)
    print(f"ResNet-18-like, input 1x3x{args.size}x{args.size}, engine {args.engine}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeat}; "
          "in parentheses: the time in float forward passes measured in the same repetition")
    print("| flow | layers | float forward | report, no sweep | sweep capped at 10 layers | "
          "full sweep | sweep, per layer |")
    print("|---|---|---|---|---|---|---|")
    for qat in (False, True):
        model = prepared(ResNet18, args.engine, qat, 0, (2, 3, args.size, args.size), 2)
        if qat:
            model.eval().apply(tq.disable_observer)
        float_model = ResNet18().eval()
        tq.fuse_modules(float_model, float_model.fusion_groups(), inplace=True)

        def forward(model=float_model):
            with torch.no_grad():
                model(x)

        layers = len(quant_report(model, x, sensitivity=False).rows)
        runs = {"forward": [], "none": [], "capped": [], "full": []}
        for _ in range(args.repeat):
            runs["forward"].append(_seconds(forward))
            runs["none"].append(_seconds(lambda: quant_report(model, x, sensitivity=False)))
            runs["capped"].append(_seconds(lambda: quant_report(model, x, max_layers=10)))
            runs["full"].append(_seconds(lambda: quant_report(model, x)))
        median = {key: statistics.median(values) for key, values in runs.items()}
        ratio = {
            key: statistics.median(v / f for v, f in zip(runs[key], runs["forward"]))
            for key in ("none", "capped", "full")
        }
        per_layer = statistics.median(
            (full - none) / layers / f for full, none, f in zip(runs["full"], runs["none"], runs["forward"])
        )
        cells = [f"{median[key]:.2f} s ({ratio[key]:.0f})" for key in ("none", "capped", "full")]
        flow = "QAT" if qat else "PTQ"
        print(f"| {flow} | {layers} | {median['forward']:.3f} s | " + " | ".join(cells)
              + f" | {per_layer:.1f} forwards |", flush=True)


if __name__ == "__main__":
    main()

"""quant_report: its cost on a ResNet-18-sized model, with and without the sensitivity sweep,
next to one forward pass of the prepared model.

    python benchmarks/bench_report.py [--repeat 3] [--size 224] [--engine x86]

The model is bench_parity.py's ResNet-18 layout (torchvision is not installable here),
prepared for PTQ (2 calibration batches) and QAT (2 SGD steps, then observers off). Per
repetition, in one process: one forward pass of the float model (fused, eval, no grad;
the prepared PTQ model's own forward also runs its HistogramObservers), the report without
the sweep, with a sweep capped at 10 layers, and with the full sweep. Prints the medians in
seconds and in float forward passes.
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


def _median_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--engine", default="x86")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    x = torch.randn(1, 3, args.size, args.size)
    print(f"ResNet-18-like, input 1x3x{args.size}x{args.size}, engine {args.engine}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeat}")
    print("| flow | layers | float forward (s) | report, no sweep | sweep capped at 10 layers | full sweep |")
    print("|---|---|---|---|---|---|")
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
        forward_s = _median_seconds(forward, args.repeat)
        cells = []
        for options in ({"sensitivity": False}, {"max_layers": 10}, {}):
            seconds = _median_seconds(lambda options=options: quant_report(model, x, **options), args.repeat)
            cells.append(f"{seconds:.2f} s ({seconds / forward_s:.0f} forwards)")
        flow = "QAT" if qat else "PTQ"
        print(f"| {flow} | {layers} | {forward_s:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

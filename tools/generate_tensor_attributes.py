"""Generate qlint/data/tensor_attributes.json: every attribute torch.Tensor has (its methods
and properties, dunders aside). A method call on a value that may be a tensor, under a name
no tensor has (`past_key_values.get_seq_length()`), shows the value is something else.

    python tools/generate_tensor_attributes.py          # rewrite the file
    python tools/generate_tensor_attributes.py --check  # exit 1 when it is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

PATH = Path(__file__).resolve().parents[1] / "qlint" / "data" / "tensor_attributes.json"


def table() -> str:
    names = sorted(name for name in dir(torch.Tensor) if not (name.startswith("__") and name.endswith("__")))
    return json.dumps({"torch_version": torch.__version__, "attributes": names}, indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        stale = PATH.read_text() != table()
        print(f"{PATH} is {'stale' if stale else 'up to date'}")
        return int(stale)
    PATH.write_text(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Copy a fixed random subset of transformers' modeling files into a directory to lint.

    python benchmarks/reviews/transformers_subset.py /work/realcode/transformers/transformers/models /tmp/tf40

40 `*/modeling_*.py` files (TF and Flax ones excluded), picked with random.Random(2026) from the
sorted list; each keeps its model folder. The copies are for a review, never committed.
"""
import glob
import os
import random
import shutil
import sys

SEED, COUNT = 2026, 40


def subset(models: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(models, "*", "modeling_*.py")))
    files = [f for f in files if not os.path.basename(f).startswith(("modeling_tf_", "modeling_flax_"))]
    return sorted(random.Random(SEED).sample(files, COUNT))


def main() -> None:
    models, target = sys.argv[1:3]
    for path in subset(models):
        rel = os.path.relpath(path, models)
        os.makedirs(os.path.join(target, os.path.dirname(rel)), exist_ok=True)
        shutil.copyfile(path, os.path.join(target, rel))
        print(rel)


if __name__ == "__main__":
    main()

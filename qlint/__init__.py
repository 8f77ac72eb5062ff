"""torch-qlint: find what breaks PyTorch eager-mode quantization, before it costs a training run."""

__version__ = "0.1.0"
# The project's home, as pyproject.toml declares it; rule docs and SARIF links point into it.
REPOSITORY_URL = "https://github.com/torch-qlint/torch-qlint"

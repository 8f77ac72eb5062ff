"""torch-qlint: find what breaks PyTorch eager-mode quantization, before it costs a training run."""

__version__ = "0.1.0"

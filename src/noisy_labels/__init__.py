"""noisy_labels: learning with noisy labels in PyTorch."""

__version__ = "0.1.0"

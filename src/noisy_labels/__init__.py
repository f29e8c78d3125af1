"""noisy_labels: learning with noisy labels in PyTorch."""

from .issues import find_label_issues, get_label_quality_scores

__version__ = "0.1.0"

__all__ = ["find_label_issues", "get_label_quality_scores"]

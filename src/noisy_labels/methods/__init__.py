"""Registered learning-with-noisy-labels methods; importing this package registers them all."""

from . import robust_losses  # noqa: F401  (registers the loss-based baselines)
from .base import Method, NoParams, get_method_class, list_methods, register_method

__all__ = ["Method", "NoParams", "get_method_class", "list_methods", "register_method"]

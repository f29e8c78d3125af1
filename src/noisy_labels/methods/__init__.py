"""Registered learning-with-noisy-labels methods; importing this package registers them all."""

from . import robust_losses  # noqa: F401  (registers the loss-based baselines)
from .base import Method, NoParams, get_method_class, list_methods
from .cdr import CDR  # noqa: F401  (registers cdr)
from .coteaching import CoTeaching  # noqa: F401  (registers coteaching)
from .dividemix import DivideMix  # noqa: F401  (registers dividemix)
from .dmlp import DMLP  # noqa: F401  (registers dmlp)
from .elr import ELR  # noqa: F401  (registers elr, elr_plus)
from .emlc import EMLC  # noqa: F401  (registers mlc, emlc)
from .flywheel import Flywheel  # noqa: F401  (registers flywheel)
from .l2b import L2B  # noqa: F401  (registers l2b)
from .meta_weighting import L2RW  # noqa: F401  (registers l2rw, mwnet, mnwnet, rmnwnet)

__all__ = ["Method", "NoParams", "get_method_class", "list_methods"]

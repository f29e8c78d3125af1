"""Label-free representations: SimCLR (:mod:`.simclr`, optimised by :mod:`.optim` and :mod:`.lars`) and
cached feature extraction (:mod:`.extract`).

DMLP's first stage (Tu et al., CVPR 2023, Sec. 3.1) learns features without labels so that noisy
labels cannot shape them; the purifier then works on the frozen features.
"""

from .extract import extract_features, save_feature_file
from .lars import LARS
from .simclr import SimCLRParams, nt_xent_loss, simclr_views, train_simclr

__all__ = [
    "LARS",
    "SimCLRParams",
    "extract_features",
    "nt_xent_loss",
    "save_feature_file",
    "simclr_views",
    "train_simclr",
]

"""Label purifiers: from frozen features, noisy labels and a small clean set to corrected labels.

:class:`DMLPPurifier` is DMLP's non-nested meta label purifier (Tu et al., CVPR 2023): IPC
(:mod:`.ipc`, the closed-form ridge meta-objective) and EAC (:mod:`.eac`, the accompanying linear
classifier), run by :mod:`.pipeline`.
"""

from .pipeline import DMLPPurifier, PurifyParams, PurifyResult, hard_labels

__all__ = ["DMLPPurifier", "PurifyParams", "PurifyResult", "hard_labels"]

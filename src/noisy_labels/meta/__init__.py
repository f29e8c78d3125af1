"""Shared bi-level machinery of the meta-learning methods (L2RW, MW-Net and variants, L2B, ...).

* :mod:`.functional`: parameter dicts, forwards at arbitrary weights that leave BatchNorm running
  statistics alone, the one-step look-ahead, RNG replay for dropout.
* :mod:`.gradients`: exact meta-gradients of per-term loss weights, fast (one forward-mode JVP) and the
  second-order reference path.
* :mod:`.weighting`: MW-Net's weighting network and the weight normalisations of L2RW and L2B.
* :mod:`.teacher`: meta-gradients of a teacher producing soft labels: EMLC's FPMG (one step exact, k steps
  with discounted mixed Hessians) and MLC's second-order look-ahead objective.
"""

from .functional import (
    ParamDict,
    RngState,
    buffers_of,
    capture_rng,
    dot,
    functional_forward,
    lookahead,
    parameters_of,
    replay_rng,
    unwrap,
)
from .gradients import (
    WeightGrad,
    grad_dict,
    jvp_losses,
    meta_loss_and_grad,
    weight_grad,
    weight_grad_second_order,
)
from .teacher import (
    StudentStep,
    discounts,
    fpmg_backward,
    lookahead_meta_loss,
    mixed_hessian_backward,
    snapshot,
)
from .weighting import (
    L2B_NORMALIZATIONS,
    L2B_SCALES,
    batch_standardized,
    effective_sample_share,
    l2b_normalize,
    normalize_sum,
    rectified_weights,
)

#: The two exact meta-gradient paths: forward-mode JVP (``fast``) and the reference double backward.
META_GRADS = ("fast", "second_order")

__all__ = [
    "META_GRADS",
    "L2B_NORMALIZATIONS",
    "L2B_SCALES",
    "ParamDict",
    "RngState",
    "StudentStep",
    "WeightGrad",
    "batch_standardized",
    "buffers_of",
    "capture_rng",
    "discounts",
    "dot",
    "fpmg_backward",
    "functional_forward",
    "grad_dict",
    "jvp_losses",
    "l2b_normalize",
    "lookahead",
    "lookahead_meta_loss",
    "meta_loss_and_grad",
    "mixed_hessian_backward",
    "effective_sample_share",
    "normalize_sum",
    "parameters_of",
    "rectified_weights",
    "replay_rng",
    "snapshot",
    "unwrap",
    "weight_grad",
    "weight_grad_second_order",
]

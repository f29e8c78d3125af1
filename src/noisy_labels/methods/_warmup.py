"""A plain-CE warm-up whose default length adapts to how fast the model learns the given labels.

Methods that train on plain cross-entropy before their own rule starts (the LNL-flywheel: the paper's
10 of 300 epochs; MW-Net and its variants: not in the paper, see their docstrings) share this state and
rule. ``params.warmup_epochs`` fixes the length (0: none, where the method allows it); ``None`` applies
:func:`noisy_labels.defaults.warmup_over` to the agreement of the warm-up network's predictions with
the given labels, measured on the whole training set at the end of each warm-up epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..defaults import warmup_over

if TYPE_CHECKING:
    from ..engine.context import TrainingContext


#: The longest an adaptive warm-up waits, as a share of the run, for a classifier still at chance
UNLEARNT_MAX_SHARE = 0.5


class AdaptiveWarmup:
    """Mixin for a :class:`~noisy_labels.methods.base.Method` whose ``Params`` have ``warmup_epochs``
    (int or None) and ``warmup_min_gain``. State (tensors, so checkpointed): ``warmup_done``, the
    warm-up's length once it has ended (0 while it runs, -1 for none), and ``agreement``, the last
    measured agreement with the given labels."""

    #: The paper's warm-up as (epochs, of a run of so many epochs): the adaptive rule's minimum.
    paper_warmup: tuple[float, float] = (0, 1)
    params: Any  # the method's Params (warmup_epochs, warmup_min_gain)
    ctx: TrainingContext

    def warmup_max_share(self) -> float:
        """The adaptive warm-up's longest length, as a share of the run."""
        return 0.5

    def setup_warmup(self) -> None:
        # on the CPU: in_warmup() is read at every step, and a device tensor would sync a GPU each time
        none = self.params.warmup_epochs == 0
        self.warmup_done = torch.tensor(-1 if none else 0, dtype=torch.long)
        self.agreement = torch.zeros(())

    def in_warmup(self) -> bool:
        return int(self.warmup_done) == 0

    def warmup_epochs_done(self) -> int:
        return max(0, int(self.warmup_done))

    def end_warmup_epoch(
        self, epoch: int, agreement: float, *, above_chance: Callable[[], bool] = lambda: True
    ) -> None:
        """Record a warm-up epoch's agreement with the given labels; end the warm-up when its rule says.

        ``above_chance`` (asked only where the adaptive rule would end the warm-up: it may cost a pass over
        the meta set) returning False, the method's evidence that the classifier has learnt nothing yet,
        keeps the warm-up going past its rule, at most :data:`UNLEARNT_MAX_SHARE` of the run.
        """
        p = self.params
        gain, done = agreement - float(self.agreement), epoch + 1
        self.agreement.fill_(agreement)
        if p.warmup_epochs is not None:
            over = done >= p.warmup_epochs
        else:
            paper_epochs, paper_total = self.paper_warmup
            total = self.ctx.epochs
            over = warmup_over(
                done,
                total,
                gain,
                paper_epochs=paper_epochs,
                paper_total=paper_total,
                min_gain=p.warmup_min_gain,
                max_share=self.warmup_max_share(),
            ) and (done >= max(1, int(total * UNLEARNT_MAX_SHARE)) or above_chance())
        if over:
            self.warmup_done.fill_(done)

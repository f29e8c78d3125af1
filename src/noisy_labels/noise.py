"""Label-noise protocols: a public alias of :mod:`noisy_labels.data.noise`."""

from .data.noise import PROTOCOLS, NoiseResult, apply_noise, empirical_transition, transition_matrix

__all__ = ["PROTOCOLS", "NoiseResult", "apply_noise", "empirical_transition", "transition_matrix"]

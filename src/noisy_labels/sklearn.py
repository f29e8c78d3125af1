"""A scikit-learn classifier that learns through noisy labels and reports the labels it doubts.

:class:`NoisyLabelClassifier` runs any registered method that fits feature vectors (``noisy-labels
methods``) on ``(X, y)``, optionally with a small trusted set ``(X_clean, y_clean)``, and keeps what the
method learnt about the training labels: a per-sample score (``cleanness_``), corrected labels
(``purified_labels_``) and the samples whose label it would change, most suspicious first
(``label_issues_``). It follows the estimator contract (``__init__`` only stores its arguments, ``fit``
returns ``self``, learned state ends in ``_``), so it clones, pickles, sits in a ``Pipeline`` and runs under
``cross_val_score``. Labels may be any hashable values; they are mapped through ``classes_``.

``method="auto"`` runs ``elr`` (early-learning regularisation, a linear head on the features), chosen by
measurement on the shared CIFAR-10 features (``benchmarks/label_issues.py``, results in
``benchmarks/results/label_issues.md``): on CIFAR-10N ``worst`` (40% human noise) its ranking had the
highest precision among the 10% most suspicious samples (99.0%; cleanlab on out-of-fold logistic
probabilities: 97.0%) and the highest ROC-AUC of the methods measured, in about 20 s for 50k samples on
one CPU thread (``flywheel``, the other candidate without a clean set, took ten minutes for a lower AUC).
With a trusted clean set, ``auto`` still runs ``elr``, with the trusted samples added to its training
data: on ``worst`` the methods built around a clean set did not beat it (``dmlp``: lower precision, AUC
and test accuracy; ``mwnet``: similar precision, lower AUC, 3 points lower test accuracy; ``l2b``'s
per-batch weights barely rank, AUC 0.56 in one run), though ``mwnet`` ranks best on symmetric noise.
Name a method to run it instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from ._validation import (
    check_class_target,
    check_feature_matrix,
    check_known_classes,
    check_same_columns,
    check_same_length,
)
from .engine.build import build_experiment, checked_config
from .engine.context import NoiseAssumption
from .engine.data import prepare_arrays
from .engine.loop import resolve_device
from .methods import Method, get_method_class, list_methods
from .metrics import rank_issues

__all__ = ["AUTO_METHOD", "NoisyLabelClassifier", "auto_batch_size", "feature_methods"]

#: What ``method="auto"`` runs, with or without a trusted clean set (see the module docstring).
AUTO_METHOD = "elr"
#: Parameters that differ from a method's defaults when run here (the shipped feature configs' values).
RECOMMENDED_PARAMS: dict[str, dict[str, Any]] = {"dmlp": {"momentum": 0.3}}


def auto_batch_size(num_train: int) -> int:
    """``batch_size="auto"``: 256 from 25,600 samples up, else about 100 steps per epoch (at least 16).

    >>> auto_batch_size(50_000), auto_batch_size(1_797), auto_batch_size(300)
    (256, 17, 16)
    """
    return min(256, max(16, num_train // 100))


def feature_methods() -> list[str]:
    """Names of the registered methods that train on feature vectors (what ``method=`` accepts)."""
    return [name for name in list_methods() if get_method_class(name).supports_features]


class NoisyLabelClassifier(ClassifierMixin, BaseEstimator):
    """Train a classifier on noisy labels with a registered method; rank the labels it doubts.

    Parameters
    ----------
    method : str, default="auto"
        A registered method that fits feature vectors (:func:`feature_methods`), or ``"auto"`` (``elr``;
        see the module docstring for why). Methods that need a trusted set (``dmlp``, ``mwnet``, ``l2b``,
        ...) require ``X_clean``/``y_clean`` in :meth:`fit`.
    method_params : dict, optional
        The method's hyper-parameters (its config section, e.g. ``{"beta": 0.7, "lam": 3.0}`` for
        ``elr``); unknown keys are an error naming them.
    model : str, default="auto"
        A registered model (``linear``, ``mlp``, ...); ``auto`` is the linear head the benchmarks use.
    model_params : dict, optional
        Model options, e.g. ``{"hidden": [512]}`` for ``mlp``.
    epochs : int, default=30
        Training epochs (passes over ``X``).
    batch_size : int or "auto", default="auto"
        ``auto`` (:func:`auto_batch_size`): ``min(256, max(16, N // 100))``, i.e. 256 (the recipe
        measured on the 50k CIFAR-10 features) from 25,600 samples up, and about 100 steps per epoch
        below (on the 1.8k digits, a batch of 256 left the head under-trained: 0.84 precision among the
        top-k suspects against 0.95).
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    lr : float, default=1e-3
        Base learning rate (cosine schedule over ``epochs``).
    weight_decay : float, default=0.0
    noise_rate : float, optional
        Noise rate assumed by the methods that take it as known (Co-teaching's forget rate, CDR's
        critical fraction, DivideMix's ``lambda_u``); None assumes 0.2. Other methods ignore it.
    standardize : bool, default=True
        Z-score the features with the training set's statistics (applied again at prediction).
    device : str, default="cpu"
        ``cpu``, ``cuda`` or ``auto``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, batches and noise-handling draws; an int makes ``fit`` repeatable.
        Global random states (torch, numpy) are left as they were.
    verbose : bool, default=False
        Progress bars while training.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        The class labels seen in ``y`` (sorted); predictions and ``purified_labels_`` use them.
    method_ : str
        The method that was run (what ``"auto"`` resolved to).
    cleanness_ : ndarray of shape (N,)
        Per training sample, higher = more likely correctly labelled: the method's own score where it has
        one (ELR: the temporal ensemble's probability of the given label; DMLP: the purified probability of
        the given label; Flywheel: the posterior of being clean; meta-weighting methods: the latest
        learned weight), else the trained model's predicted probability of the given label.
    purified_labels_ : ndarray of shape (N,)
        The method's corrected label of every training sample, in the label space of ``y`` (the model's
        prediction for methods that do not correct labels).
    label_issues_ : ndarray of shape (M,) int64
        Indices of the training samples whose purified label differs from the given one, ranked by
        ascending ``cleanness_`` (most likely mislabelled first).
    network_ : noisy_labels.methods.Method
        The fitted method (its networks), detached from the training data.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).

    See Also
    --------
    noisy_labels.find_label_issues : the same ranking as a function, shaped like cleanlab's.

    References
    ----------
    Liu et al., "Early-Learning Regularization Prevents Memorization of Noisy Labels", NeurIPS 2020 (ELR).
    Tu et al., "Learning from Noisy Labels with Decoupled Meta Label Purifier", CVPR 2023 (DMLP).

    Examples
    --------
    >>> import numpy as np
    >>> from noisy_labels.sklearn import NoisyLabelClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (60, 2))]
    >>> y = np.array(["cat"] * 60 + ["dog"] * 60)
    >>> y[:4] = "dog"  # four cats labelled as dogs
    >>> clf = NoisyLabelClassifier(epochs=10, batch_size=20, lr=0.05, random_state=0).fit(X, y)
    >>> clf.method_, clf.classes_.tolist()
    ('elr', ['cat', 'dog'])
    >>> sorted(clf.label_issues_[:4].tolist())
    [0, 1, 2, 3]
    >>> clf.purified_labels_[:4].tolist()
    ['cat', 'cat', 'cat', 'cat']
    """

    def __init__(
        self,
        method: str = "auto",
        *,
        method_params: dict[str, Any] | None = None,
        model: str = "auto",
        model_params: dict[str, Any] | None = None,
        epochs: int = 30,
        batch_size: int | str = "auto",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        noise_rate: float | None = None,
        standardize: bool = True,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.method = method
        self.method_params = method_params
        self.model = model
        self.model_params = model_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.noise_rate = noise_rate
        self.standardize = standardize
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, X, y, X_clean=None, y_clean=None) -> NoisyLabelClassifier:
        """Train on ``(X, y)`` (noisy labels), with the trusted ``(X_clean, y_clean)`` if given.

        Parameters
        ----------
        X : array-like of shape (N, D)
            Features (embeddings); NaN and infinite values are an error.
        y : array-like of shape (N,)
            The given, possibly wrong, labels (any hashable values, at least two classes).
        X_clean, y_clean : array-like of shape (M, D) and (M,), optional
            A small set with trusted labels, all of classes present in ``y``. Methods that use a trusted
            set take it as their meta set; the others train on it together with ``(X, y)`` (reported
            attributes cover ``X`` only).

        Returns
        -------
        self
        """
        x = check_feature_matrix(X, name="X")
        validate_data(self, X, skip_check_array=True, reset=True)
        labels = check_class_target(y, name="y")
        check_same_length(X=x, y=labels)
        classes, y_idx = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y holds only one class ({classes[0]!r}); a classifier needs at least two classes."
            )
        x_clean, yc_idx = self._clean_set(x, classes, X_clean, y_clean)
        name = self._resolve_method(x_clean is not None)
        uses_meta = get_method_class(name).requires_meta
        n = len(y_idx)
        if x_clean is not None and not uses_meta:  # a method without a meta set learns from both
            x, y_idx = np.concatenate([x, x_clean]), np.concatenate([y_idx, yc_idx])
            x_clean = yc_idx = None
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        cfg = self._config(name, seed, len(y_idx), 0 if x_clean is None else len(yc_idx))
        assumed = NoiseAssumption("symmetric", 0.2 if self.noise_rate is None else self.noise_rate)
        method, data, summary = _train(cfg, x, y_idx, x_clean, yc_idx, classes, assumed)

        self.classes_ = classes
        self.method_ = name
        self.network_ = method
        self.feature_mean_ = data.feature_mean
        self.feature_std_ = data.feature_std
        self.fit_summary_ = summary
        scores, corrected = _per_sample_outputs(method, data)
        self.cleanness_ = scores[:n]
        purified = corrected[:n]
        self.purified_labels_ = classes[purified]
        given = y_idx[:n]
        self.label_issues_ = rank_issues(given, purified, self.cleanness_)
        _detach(method)
        return self

    def _clean_set(self, x, classes, X_clean, y_clean):
        if (X_clean is None) != (y_clean is None):
            raise ValueError("pass both X_clean and y_clean (the trusted set), or neither.")
        if X_clean is None:
            return None, None
        x_clean = check_feature_matrix(X_clean, name="X_clean")
        check_same_columns(X=x, X_clean=x_clean)
        yc = check_class_target(y_clean, name="y_clean")
        check_same_length(X_clean=x_clean, y_clean=yc)
        check_known_classes(yc, classes, name="y_clean", reference="y")
        return x_clean, np.searchsorted(classes, yc)

    def _resolve_method(self, has_clean: bool) -> str:
        if self.method == "auto":
            return AUTO_METHOD
        if not isinstance(self.method, str) or self.method not in list_methods():
            raise ValueError(
                f"unknown method {self.method!r}; use 'auto' or one of {', '.join(feature_methods())}."
            )
        cls = get_method_class(self.method)
        if not cls.supports_features:
            raise ValueError(
                f"method {self.method!r} trains on images only; for features use one of "
                f"{', '.join(feature_methods())}."
            )
        if cls.requires_meta and not has_clean:
            raise ValueError(
                f"method {self.method!r} needs a trusted clean set: pass X_clean and y_clean to fit, or use "
                f"a method without one (method='auto' runs {AUTO_METHOD!r})."
            )
        return self.method

    def _config(self, name: str, seed: int, num_train: int, meta_size: int):
        params = {**RECOMMENDED_PARAMS.get(name, {}), **dict(self.method_params or {})}
        tree = {
            "method": name,
            "method_params": {name: params},
            "model": {"name": self.model, "params": dict(self.model_params or {})},
            "optim": {"name": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay},
            "epochs": self.epochs,
            "batch_size": auto_batch_size(num_train) if self.batch_size == "auto" else self.batch_size,
            "noise": {"protocol": "none"},  # the arrays carry their own noise; its rate is assumed below
            "meta": {"size": meta_size},
            "standardize_features": self.standardize,
            "seed": seed,
            "device": self.device,
            "quiet": not self.verbose,
        }
        return checked_config(tree)

    # ------------------------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, K)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        x = check_feature_matrix(X, name="X")
        validate_data(self, X, skip_check_array=True, reset=False)
        if self.feature_mean_ is not None:
            x = (x - self.feature_mean_) / self.feature_std_
        t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        return _predict_logits(self.network_, t).softmax(1).double().numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row of ``X``, in the label space of ``y``."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]


# ------------------------------------------------------------------------------------------ helpers
def _train(cfg, x, y, x_clean, y_clean, classes, assumed_noise: NoiseAssumption):
    """Build the engine on the arrays and train; global random states are restored afterwards."""
    device = resolve_device(cfg.device)
    devices = [device.index or 0] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        try:
            names = tuple(map(str, classes))
            data = prepare_arrays(cfg, device, x, y, x_clean=x_clean, y_clean=y_clean, classes=names)
            run = build_experiment(cfg, device=device, data=data, assumed_noise=assumed_noise)
            summary = run.engine.fit(run.method, None)
        finally:
            np.random.set_state(numpy_state)
    return run.method, run.data, summary


def _predict_logits(method, x, chunk: int = 4096):
    """The method's logits for prepared inputs, in evaluation mode, without gradients (CPU tensor)."""
    modules = method.eval_modules()
    device = next((p.device for m in modules for p in m.parameters()), torch.device("cpu"))
    for m in modules:
        m.eval()
    with torch.no_grad():
        outs = [method.predict(x[i : i + chunk].to(device)).float().cpu() for i in range(0, len(x), chunk)]
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def _per_sample_outputs(method, data) -> tuple[np.ndarray, np.ndarray]:
    """``(cleanness, corrected hard labels)`` over the training set; the model's own view where a method
    has none."""
    scores, corrected = method.cleanness(), method.corrected_labels()
    given = data.train_y.cpu().numpy()
    if scores is None or corrected is None:
        probs = _predict_logits(method, data.train_x).softmax(1).numpy()
        if scores is None:
            scores = probs[np.arange(len(given)), given]
        if corrected is None:
            corrected = probs.argmax(1)
    corrected = np.asarray(corrected)
    if corrected.ndim == 2:
        corrected = corrected.argmax(1)
    return np.asarray(scores, dtype=np.float64), corrected.astype(np.int64)


def _detach(method) -> None:
    """Drop the method's (and its inner methods') reference to the training context and its data."""
    for obj in (method, *(v for v in vars(method).values() if isinstance(v, Method))):
        with contextlib.suppress(AttributeError):
            obj.ctx = None
    for m in method.eval_modules():
        m.eval()

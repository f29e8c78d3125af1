"""Networks used in learning-with-noisy-labels papers, each split into ``backbone`` and ``head``.

Every model is a :class:`Classifier`: ``backbone`` maps inputs to ``(B, feature_dim)`` features,
``head`` maps features to ``(B, num_classes)`` logits. Image models take normalised float tensors
``(B, C, H, W)``; feature models (``linear``, ``mlp``) take ``(B, D)``. Build by name with
:func:`create_model`; :func:`list_models` gives the names. :func:`init_backbone` starts a backbone from
saved weights (``model.init``, :mod:`.init`).
"""

from .airbench import AirbenchNet
from .base import Classifier, eval_mode, init_weights
from .cnn import NineLayerCNN
from .init import init_backbone, save_encoder
from .preact_resnet import PreActResNet, PreActResNet18
from .registry import create_model, list_models, register_model
from .resnet import ResNet, ResNet18, ResNet32, ResNet34, ResNet50
from .small import MLP, LinearHead, SmallCNN
from .teachers import GatedTeacher, LabelCorrector, WeightNet
from .torchvision_models import torchvision_backbone
from .wide_resnet import WideResNet, WideResNet28_10

__all__ = [
    "AirbenchNet",
    "GatedTeacher",
    "LabelCorrector",
    "WeightNet",
    "Classifier",
    "eval_mode",
    "init_weights",
    "init_backbone",
    "save_encoder",
    "register_model",
    "create_model",
    "list_models",
    "PreActResNet",
    "PreActResNet18",
    "NineLayerCNN",
    "ResNet",
    "ResNet18",
    "ResNet32",
    "ResNet34",
    "ResNet50",
    "WideResNet",
    "WideResNet28_10",
    "SmallCNN",
    "LinearHead",
    "MLP",
    "torchvision_backbone",
]

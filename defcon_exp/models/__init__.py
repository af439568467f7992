"""CIFAR ResNet-50 with an attention slot, and the model registry."""

from defcon_exp.models.registry import MODEL_NAMES, MODELS, create_model
from defcon_exp.models.resnet import Bottleneck, CifarResNet, cifar_resnet50

__all__ = ["MODELS", "MODEL_NAMES", "Bottleneck", "CifarResNet", "cifar_resnet50", "create_model"]

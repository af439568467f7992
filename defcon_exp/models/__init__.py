"""CIFAR ResNet-50 with an attention slot, and the model registry."""

from defcon_exp.models.registry import MODEL_NAMES, MODELS, create_model, model_from_config
from defcon_exp.models.resnet import (
    Bottleneck,
    CifarResNet,
    cifar_resnet50,
    count_parameters,
    set_kernels,
)

__all__ = ["MODELS", "MODEL_NAMES", "Bottleneck", "CifarResNet", "cifar_resnet50", "count_parameters", "create_model", "model_from_config", "set_kernels"]

"""CIFAR ResNet-50 and the ImageNet ResNets with an attention slot, and the model registry."""

from defcon_exp.models.imagenet_resnet import ImageNetResNet, imagenet_resnet
from defcon_exp.models.pretrained import load_pretrained
from defcon_exp.models.registry import ARCHS, MODEL_NAMES, MODELS, create_model, model_from_config
from defcon_exp.models.resnet import (
    Bottleneck,
    CifarResNet,
    cifar_resnet50,
    count_parameters,
    set_kernels,
)

__all__ = [
    "ARCHS",
    "MODELS",
    "MODEL_NAMES",
    "Bottleneck",
    "CifarResNet",
    "ImageNetResNet",
    "cifar_resnet50",
    "count_parameters",
    "create_model",
    "imagenet_resnet",
    "load_pretrained",
    "model_from_config",
    "set_kernels",
]

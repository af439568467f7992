"""Channel-attention modules (one a file) and a registry to create them by name."""

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.cbam import Cbam
from defcon_exp.attention.channel_shuffle import channel_shuffle, channel_unshuffle, shuffle_groups
from defcon_exp.attention.coord import CoordinateAttention
from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.defcon_corr import DefconCorrelated
from defcon_exp.attention.defcon_mix import DefconMix
from defcon_exp.attention.defcon_mod import DefconModulated
from defcon_exp.attention.defcon_released import DefconReleased
from defcon_exp.attention.defcon_shuffle import DefconShuffle
from defcon_exp.attention.eca import EfficientChannelAttention
from defcon_exp.attention.eca_circular import CircularEfficientChannelAttention
from defcon_exp.attention.fca import FrequencyChannelAttention
from defcon_exp.attention.gather_excite import GatherExcite
from defcon_exp.attention.gct import GatedChannelTransform
from defcon_exp.attention.global_context import GlobalContext
from defcon_exp.attention.kernel_size import (
    PAPER_KERNEL_SIZES,
    KernelSizeSpec,
    adaptive_kernel_size,
    resolve_kernel_size,
)
from defcon_exp.attention.registry import (
    ATTENTIONS,
    create_attention,
    get_attention_class,
    list_attentions,
)
from defcon_exp.attention.se import SqueezeExcite
from defcon_exp.attention.simam import SimAM
from defcon_exp.attention.srm import StyleRecalibration

__all__ = [
    "ATTENTIONS",
    "PAPER_KERNEL_SIZES",
    "Cbam",
    "ChannelAttention",
    "CircularEfficientChannelAttention",
    "CoordinateAttention",
    "Defcon",
    "DefconCorrelated",
    "DefconMix",
    "DefconModulated",
    "DefconReleased",
    "DefconShuffle",
    "EfficientChannelAttention",
    "FrequencyChannelAttention",
    "GatedChannelTransform",
    "GatherExcite",
    "GlobalContext",
    "KernelSizeSpec",
    "SimAM",
    "SqueezeExcite",
    "StyleRecalibration",
    "adaptive_kernel_size",
    "channel_shuffle",
    "channel_unshuffle",
    "create_attention",
    "get_attention_class",
    "list_attentions",
    "resolve_kernel_size",
    "shuffle_groups",
]

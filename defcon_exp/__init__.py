"""defcon_exp: DEFCON-1 channel attention and an experiment tool for channel-attention ResNets."""

__version__ = "0.1.0"

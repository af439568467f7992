"""Hydra configuration tree, shipped inside the package as ``defcon_exp.conf``."""

"""The training engine: loop, checkpoints, schedulers, optimisers, metrics and run logging.

The engine knows nothing of Hydra nor of which attention the model uses: it receives a
plain ``nn.Module``, loaders following the data-layer interface and plain-data settings.
"""

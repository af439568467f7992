"""From a composed config to a run: build model/data/optimiser by name, plan fresh or resume
(the checkpoint loaded once), call the engine. Sits between ``cli/`` and ``engine/``."""

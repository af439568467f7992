"""A run that needs no torchvision does not import it: torchvision's package import costs about
a second of CPU at every `defcon-train` start (half of torch's own), which every process of a
sweep, every torchrun rank and every end-to-end test paid for a synthetic run. CIFAR, image
folders, the DataLoader transforms, the augmentation policies and stochastic depth import it
where they are used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: a whole `defcon-train` (the console script's main) in this interpreter; prints which heavy
#: packages were loaded by the time the process ends
PROBE = """import atexit, json, sys
atexit.register(lambda: print("LOADED", json.dumps(sorted(
    {m.split(".")[0] for m in sys.modules} & {"torchvision", "PIL", "matplotlib", "optuna"}))))
from defcon_exp.cli.train import main
sys.argv = ["defcon-train", *sys.argv[1:]]
main()
"""


def loaded_by(args: list[str], cwd: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


def test_a_synthetic_defcon_run_loads_no_torchvision(tmp_path: Path) -> None:
    args = ["model=defcon", "data=synthetic", "data.train_size=16", "data.val_size=0",
            "data.test_size=8", "data.batch_size=8", "data.eval_batch_size=8",
            "data.loader=tensor", "data.num_workers=0", "trainer.epochs=1", "trainer.device=cpu",
            "trainer.progress=false", f"hydra.run.dir={tmp_path / 'run'}"]
    assert loaded_by(args, tmp_path) == []
    assert (tmp_path / "run" / "summary.json").is_file()

"""``model.init_from=FILE``: start from a torchvision ResNet state dict (or any plain state dict
with this model's key names), loaded with ``torch.load(weights_only=True)``.

The file must provide every tensor of the network except the attention modules' (torchvision
has none): those keep their own initialisation and are reported by name. A classifier of
another size (ImageNet's 1,000 classes onto your 10) is left at its initialisation and
reported. Anything else missing, unexpected or of another shape is refused with one line.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from defcon_exp.rates import first_line

__all__ = ["PretrainedReport", "load_pretrained"]

_CLASSIFIER = ("fc.weight", "fc.bias")


@dataclass
class PretrainedReport:
    """What :func:`load_pretrained` did: ``loaded``/``missing``/``skipped`` state-dict keys."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the attention's (initialised anew)
    skipped: list[str] = field(default_factory=list)  # classifier of another size

    def message(self) -> str:
        """One line for the run's log."""
        text = f"model.init_from={self.path}: loaded {len(self.loaded)} tensors"
        if self.missing:
            names = sorted({re.sub(r"^layer\d+\.\d+\.", "", key) for key in self.missing})
            text += (
                f"; {len(self.missing)} attention tensors are not in the file and keep their "
                f"initialisation: {', '.join(names)} in every block"
            )
        if self.skipped:
            text += f"; the classifier ({', '.join(self.skipped)}) has another size in the file "
            text += "and keeps its initialisation"
        return text


def _read(path: str) -> Mapping[str, Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model.init_from={path!r}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first = first_line(error)
        raise ValueError(
            f"model.init_from={path!r} cannot be loaded with weights_only=True ({first}); "
            f"give a plain state dict (torch.save(model.state_dict(), file))"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"model.init_from={path!r} is not a plain state dict (a mapping of names to "
            f"tensors); save one with torch.save(model.state_dict(), file)"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> PretrainedReport:
    """Copy the tensors of the state dict at ``path`` into ``model`` (see module doc).

    Raises:
        FileNotFoundError / ValueError: one line naming the file and the first offending keys.
    """
    path = os.fspath(path)
    state = _read(path)
    own = model.state_dict()
    report = PretrainedReport(path)
    unexpected = sorted(set(state) - set(own))
    missing = [key for key in own if key not in state]
    not_attention = [key for key in missing if ".attention." not in key]
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} keys the model does not have ({unexpected[:3]})")
    if not_attention:
        problems.append(f"{len(not_attention)} model keys missing ({not_attention[:3]})")
    wrong = [key for key in own if key in state and state[key].shape != own[key].shape]
    report.skipped = [key for key in wrong if key in _CLASSIFIER]
    wrong = [key for key in wrong if key not in _CLASSIFIER]
    if wrong:
        shapes = [
            f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}" for key in wrong[:2]
        ]
        problems.append(f"{len(wrong)} tensors of another shape ({'; '.join(shapes)})")
    if problems:
        raise ValueError(
            f"model.init_from={path!r} does not fit this model: {', '.join(problems)}; is it a "
            f"state dict of the same architecture (model.arch)?"
        )
    report.missing = missing
    report.loaded = [key for key in own if key in state and key not in report.skipped]
    model.load_state_dict({key: state[key] for key in report.loaded}, strict=False)
    return report

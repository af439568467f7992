"""Issue 25.6: a wrong type or a misspelt group option is one line naming the value and the fix
(no Hydra text), before anything is written."""

from __future__ import annotations

import pytest

from defcon_exp.config import ConfigError
from defcon_exp.run.launch import check_command_line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.epochs=abc"], "trainer.epochs='abc' is invalid: trainer.epochs takes an integer"),
        (["-m", "trainer.epochs=1,abc"], "trainer.epochs='abc' is invalid"),
        (["optim.lr=fast"], "optim.lr='fast' is invalid: optim.lr takes a number"),
        (["trainer.progress=maybe"], "trainer.progress takes true or false"),
        (["trainer.grad_clip_norm=x"], "trainer.grad_clip_norm takes a number or null"),
        (["optim.betas=[0.9,x]"], "optim.betas takes a list of numbers"),
        (["model=defcn"], "model=defcn is invalid: did you mean defcon? model options: cbam, "),
        (["-m", "model=se,ecaa"], "model=ecaa is invalid: did you mean eca?"),
        (["experiment=smok"], "experiment=smok is invalid: did you mean smoke?"),
        (["debug=fast"], "debug=fast is invalid: did you mean fast_dev_run?"),
        (["arch=resnet99_imagenet"], "arch=resnet99_imagenet is invalid: did you mean resnet50_imagenet?"),
    ],
)
def test_refused_in_one_line_with_the_fix(args: list[str], message: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_command_line(args)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_valid_values_and_options_pass(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_command_line(["-m", "model=se,eca", "trainer.epochs=1,2", "trainer.grad_clip_norm=null",
                        "optim.lr=1e-3", "experiment=null", "data=synthetic", "arch=resnet18_imagenet"])

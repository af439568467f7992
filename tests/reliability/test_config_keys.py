"""The one flattener and the one list of placement keys (issue 21): each comparison of configs
(resume warning, report differences, run name, rerun command) skips exactly the keys it skipped
when each kept its own list."""

from __future__ import annotations

import math

import pytest

from defcon_exp.analysis.objectives import TRIAL_KEYS
from defcon_exp.analysis.report import NEUTRAL_KEYS
from defcon_exp.analysis.search_report import SWEEPER_KEYS
from defcon_exp.config import ConfigError
from defcon_exp.config_rules import _check_numbers_finite
from defcon_exp.keys import flat_items, walk_items
from defcon_exp.run.plan import RESUME_NEUTRAL
from defcon_exp.run.run_label import NOT_COMPARED


def test_lists_are_leaves_unless_indexed() -> None:
    node = {"a": {"b": 1, "c": [2, {"d": 3}]}, "e": (4,), "f": {}}
    assert dict(flat_items(node)) == {"a.b": 1, "a.c": [2, {"d": 3}], "e": (4,)}
    assert dict(flat_items(node, index_lists=True)) == {"a.b": 1, "a.c.0": 2, "a.c.1.d": 3, "e.0": 4}
    assert list(flat_items(7)) == [("", 7)]


def test_every_entry_parents_first_through_lists() -> None:
    """The code check's walk: inner entries too (a ``_target_`` holding a dict), in lists."""
    node = {"a": {"_target_": {"x": 1}}, "h": [{"class": "k"}], "s": "ext://y"}
    assert [(d, k) for d, k, _ in walk_items(node, "p.")] == [
        ("p.a", "a"), ("p.a._target_", "_target_"), ("p.a._target_.x", "x"), ("p.h", "h"),
        ("p.h.0.class", "class"), ("p.s", "s"),
    ]


def test_a_dotted_key_beside_the_nested_path_keeps_both_values() -> None:
    """Pairs, not a dict: the finite check sees a NaN even when a later leaf has its key."""
    pairs = list(flat_items({"a.b": math.nan, "a": {"b": 1.0}}))
    assert [key for key, _ in pairs] == ["a.b", "a.b"]
    with pytest.raises(ConfigError, match=r"a\.b=nan"):
        _check_numbers_finite({"a.b": math.nan, "a": {"b": 1.0}})


def test_each_comparison_skips_the_keys_it_skipped_before() -> None:
    assert {
        "resume", "run_dir", "trainer.progress", "trainer.device", "trainer.epochs",
        "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.keep_checkpoints",
        "trainer.num_threads", "trainer.histograms_every_n_epochs", "trainer.histogram_images",
        "trainer.channels_last", "trainer.compile", "model.kernels", "data.num_workers",
        "data.pin_memory", "data.root",
    } == RESUME_NEUTRAL
    assert {
        "seed", "run_dir", "resume", "tags", "trainer.device", "trainer.progress",
        "trainer.log_every_n_steps", "data.num_workers", "data.pin_memory", "data.root",
    } == NEUTRAL_KEYS
    assert {
        "model", "resume", "run_dir", "trainer.device", "trainer.progress", "trainer.num_threads",
        "data.num_workers", "data.root", "data.pin_memory",
    } == NOT_COMPARED
    assert TRIAL_KEYS == ("search.storage", "search.study_name", "search.trial_number",
                          "search.prune", "search.pruner")
    assert (*TRIAL_KEYS, "resume") == SWEEPER_KEYS

"""Augmentation policies on the DataLoader path (issue 14): torchvision v2's own transforms
drawing from per-image seeds of the epoch plan, so batches stay a pure function of
``(seed, epoch)``; the tensor loader refuses them with the loader that supports them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from defcon_exp.data import build_data
from defcon_exp.data.policies import AUTO_AUGMENT_NAMES, ImagePolicies
from defcon_exp.data.transforms import transform_image

SYNTH = {"name": "synthetic", "train_size": 96, "test_size": 16, "batch_size": 32, "loader": "dataloader"}


def epoch(loader, number: int) -> list[torch.Tensor]:
    loader.set_epoch(number)
    return [images.clone() for images, _ in loader]


@pytest.mark.parametrize("policy", ["randaugment"])  # the seeding is the same for every policy
def test_policy_batches_are_a_function_of_seed_and_epoch(policy):
    options = {**SYNTH, "auto_augment": policy, "random_erasing": 0.5}
    serial = build_data({**options, "num_workers": 0}, seed=3).train
    workers = build_data({**options, "num_workers": 2}, seed=3).train
    plain = build_data({**SYNTH, "num_workers": 0}, seed=3).train
    first = epoch(serial, 1)
    torch.manual_seed(123)  # the global RNG plays no part
    for got, want in zip(epoch(workers, 1), first, strict=True):
        assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(epoch(serial, 1), first, strict=True))  # resume
    assert not torch.equal(epoch(serial, 2)[0], first[0])
    assert not torch.equal(epoch(plain, 1)[0], first[0])  # the policy really changes images


@pytest.mark.parametrize("policy", AUTO_AUGMENT_NAMES[1:])
def test_transform_image_equals_torchvision_v2_with_the_same_seed(policy):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    policies = ImagePolicies(policy, random_erasing=1.0)
    reference = {
        "randaugment": v2.RandAugment(),
        "trivialaugment": v2.TrivialAugmentWide(),
        "autoaugment_cifar10": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
        "autoaugment_imagenet": v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
    }[policy]
    for seed in range(5):
        got = transform_image(image, mean, std, 2, 6, True, policies=policies, policy_seed=seed)
        torch.manual_seed(seed)
        chw = TF.horizontal_flip(TF.crop(TF.pad(torch.from_numpy(image).permute(2, 0, 1), [4]), 2, 6, 32, 32))
        want = TF.normalize(TF.to_dtype(reference(chw), torch.float32, scale=True), mean, std)
        want = v2.RandomErasing(p=1.0)(want)
        assert torch.equal(got, want)


def test_without_policies_both_loaders_still_agree():
    tensor = build_data({**SYNTH, "loader": "tensor", "cutout": 8}, seed=1).train
    worker = build_data({**SYNTH, "num_workers": 0, "cutout": 8}, seed=1).train
    for a, b in zip(epoch(tensor, 0), epoch(worker, 0), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("key", "value"), [("auto_augment", "randaugment"), ("random_erasing", 0.25)])
def test_tensor_loader_refuses_policies_naming_the_dataloader(key, value):
    with pytest.raises(ValueError, match=rf"^data\.{key}=.* use data\.loader=dataloader$"):
        build_data({**SYNTH, "loader": "tensor", key: value}, seed=0)


def test_dataloader_iteration_leaves_the_global_rng_alone():
    """A mid-epoch resume restores the RNG and starts a new iterator: if the iterator drew
    from the global RNG, dropout's stream would shift (SIGKILL + resume not exact)."""
    loader = build_data({**SYNTH, "num_workers": 0}, seed=0).train
    state = torch.get_rng_state()
    next(iter(loader))
    assert torch.equal(torch.get_rng_state(), state)

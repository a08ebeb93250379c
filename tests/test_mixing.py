"""Mixup and CutMix on multi-task batches: every task kind's mixed target, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkaggle.errors import UserError
from mtlkaggle.mixing import mix_batch, mix_seed, mixing_active
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import AugmentSpec, Spec, with_augment_overrides

TASKS = Spec.model_validate(
    {
        "name": "t",
        "data_dir": ".",
        "data": {"train": "x.csv", "id_column": "id", "image_column": "id"},
        "tasks": [
            {"name": "cls", "kind": "multiclass", "column": "c", "num_classes": 3},
            {"name": "tags", "kind": "multilabel", "column": "t", "num_classes": 2},
            {"name": "age", "kind": "regression", "column": "a"},
        ],
    }
).tasks


def _batch():
    # every image is one constant value, so each pixel says which row it came from
    images = torch.stack([torch.full((3, 8, 10), 10 * (k + 1), dtype=torch.uint8) for k in range(4)])
    targets = {
        "cls": torch.tensor([0, 1, 2, 1]),
        "tags": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
        "age": torch.tensor([-1.0, 0.5, 2.0, 0.0]),
    }
    return images, targets


def _mixed(mix: str, seed: int = 0, **fields):
    images, targets = _batch()
    augment = AugmentSpec(mix=mix, **fields)
    return mix_batch(images, targets, TASKS, augment, np.random.default_rng(seed))


def _check_targets_by_hand(out):
    _, targets = _batch()
    lam, perm = out.lam, out.perm.tolist()
    assert perm != [0, 1, 2, 3]  # this seed pairs rows with others
    for i, j in enumerate(perm):
        expected = np.zeros(3)
        expected[int(targets["cls"][i])] += lam
        expected[int(targets["cls"][j])] += 1 - lam
        np.testing.assert_allclose(out.targets["cls"][i].numpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(out.targets["cls"][i].sum().item(), 1.0, rtol=1e-6)
        tags = lam * targets["tags"][i].numpy() + (1 - lam) * targets["tags"][j].numpy()
        np.testing.assert_allclose(out.targets["tags"][i].numpy(), tags, rtol=1e-6)
        age = lam * float(targets["age"][i]) + (1 - lam) * float(targets["age"][j])
        assert float(out.targets["age"][i]) == pytest.approx(age, rel=1e-6)


def test_mixup_mixes_images_and_every_task_kind_with_one_lambda():
    out = _mixed("mixup", mix_alpha=0.4)
    assert 0.0 < out.lam < 1.0
    images, _ = _batch()
    for i, j in enumerate(out.perm.tolist()):
        pixel = out.lam * float(images[i, 0, 0, 0]) + (1 - out.lam) * float(images[j, 0, 0, 0])
        assert torch.allclose(out.images[i], torch.full((3, 8, 10), pixel), atol=1e-4)
    _check_targets_by_hand(out)


def test_cutmix_lambda_is_the_share_of_pixels_kept():
    out = _mixed("cutmix", seed=1)
    images, _ = _batch()
    kept = None
    for i, j in enumerate(out.perm.tolist()):
        own = out.images[i, 0] == float(images[i, 0, 0, 0])
        other = out.images[i, 0] == float(images[j, 0, 0, 0])
        assert bool((own | other).all())  # every pixel comes from one of the pair, no blending
        if i != j:
            kept = float(own.float().mean())
            assert kept == pytest.approx(out.lam)
            box = ~own  # the pasted region is one rectangle
            rows, cols = box.any(dim=1), box.any(dim=0)
            assert int(box.sum()) == int(rows.sum()) * int(cols.sum())
    assert kept is not None and 0.0 < kept < 1.0
    _check_targets_by_hand(out)


def test_same_draw_for_the_same_batch_seed_and_none_when_off():
    a, b = (mix_batch(*_batch(), TASKS, AugmentSpec(mix="cutmix"), mix_seed(1, 2, 0, 5)) for _ in range(2))
    assert a.lam == b.lam and torch.equal(a.perm, b.perm) and torch.equal(a.images, b.images)
    c = mix_batch(*_batch(), TASKS, AugmentSpec(mix="cutmix"), mix_seed(1, 2, 0, 6))
    assert (c.lam, c.perm.tolist()) != (a.lam, a.perm.tolist())
    images, targets = _batch()
    never = _mixed("mixup", mix_prob=0.0)
    assert never.lam == 1.0 and never.perm is None and torch.equal(never.images, images)
    assert never.targets["cls"].dtype == torch.int64  # hard labels stay hard
    shares = [_mixed("mixup", seed=s, mix_prob=0.5).perm is not None for s in range(200)]
    assert 0.35 < np.mean(shares) < 0.65


def test_mixing_switches_off_for_the_last_epochs():
    augment = AugmentSpec(mix="mixup", mix_off_epochs=2)
    assert [mixing_active(augment, e, 5) for e in range(5)] == [True, True, True, False, False]
    assert not any(mixing_active(AugmentSpec(), e, 5) for e in range(5))
    assert AugmentSpec(mix="cutmix").resolved_mix_alpha == 1.0
    assert AugmentSpec(mix="mixup").resolved_mix_alpha == 0.2


def test_bad_mix_option_is_one_clear_line(workspace):
    from mtlkaggle.spec import load_spec

    with pytest.raises(UserError, match="--mix: Input should be 'none', 'mixup' or 'cutmix'"):
        with_augment_overrides(load_spec("demo"), mix="blend")


@pytest.mark.slow
def test_train_with_mix_runs_and_resumes_exactly(tiny_spec, workspace, runner):
    from mtlkaggle.cli import app

    args = ["train", "demo", "--fold", "0", "--mix", "cutmix", "--backbone", "test_efficientnet"]
    args += ["--no-pretrained", "--img-size", "32", "--num-workers", "0", "--epochs", "2"]
    result = runner.invoke(app, [*args, "--run", "mixed"])
    assert result.exit_code == 0, result.output
    plain = runner.invoke(app, [*args[:4], *args[6:], "--run", "plain"])
    assert plain.exit_code == 0, plain.output
    mixed_m = pd.read_csv(workspace / "runs/demo/mixed/fold0/metrics.csv")
    plain_m = pd.read_csv(workspace / "runs/demo/plain/fold0/metrics.csv")
    assert np.isfinite(mixed_m["train/loss"]).all()
    assert mixed_m["train/loss"].iloc[0] != pytest.approx(plain_m["train/loss"].iloc[0])
    # a resumed mixed run trains on the same mixed batches as the uninterrupted one
    from mtlkaggle.spec import with_train_overrides
    from mtlkaggle.train import TrainOptions, train_fold

    spec = with_augment_overrides(with_train_overrides(tiny_spec, epochs=2), mix="mixup")
    train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/full")))

    class _Stop(Exception):
        pass

    def stop(trainer, row):
        raise _Stop

    with pytest.raises(_Stop):
        train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/cut"), on_epoch_end=stop))
    train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/cut"), resume=True))
    full = torch.load(workspace / "runs/full/fold0/last.pt", weights_only=True)["model"]
    resumed = torch.load(workspace / "runs/cut/fold0/last.pt", weights_only=True)["model"]
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    with pytest.raises(UserError, match=r"trained with other settings \(augment.mix: mixup -> cutmix\)"):
        train_fold(
            with_augment_overrides(spec, mix="cutmix"),
            "0",
            TrainOptions(RunLayout(workspace / "runs/cut"), resume=True),
        )

import numpy as np
import pytest
import torch

from mtlkaggle.losses import (
    LearnedWeighting,
    MultiTaskLoss,
    TaskLoss,
    UncertaintyWeighting,
    balanced_class_weights,
    balanced_pos_weight,
)
from mtlkaggle.spec import Spec


def _spec(weighting="fixed", **task_extra):
    return Spec.model_validate(
        {
            "name": "t",
            "data_dir": ".",
            "data": {"train": "x.csv", "id_column": "id", "image_column": "id"},
            "tasks": [
                {"name": "cls", "kind": "multiclass", "column": "c", "num_classes": 3, **task_extra},
                {"name": "age", "kind": "regression", "column": "a"},
                {"name": "tags", "kind": "multilabel", "column": "t", "num_classes": 4},
            ],
            "train": {"weighting": weighting, "learned_lambda": 0.3},
        }
    )


def test_uncertainty_weighting_matches_kendall():
    w = UncertaintyWeighting(_spec("uncertainty"))
    s = torch.tensor([0.2, -0.5, 1.0])
    w.log_var.data = s.clone()
    losses = torch.tensor([1.5, 0.7, 0.3])
    # classification: exp(-s) L + s/2; regression: exp(-s) L / 2 + s/2
    expected = np.exp(-0.2) * 1.5 + 0.1 + 0.5 * np.exp(0.5) * 0.7 - 0.25 + np.exp(-1.0) * 0.3 + 0.5
    assert float(w(losses, torch.ones(3)).detach()) == pytest.approx(expected, rel=1e-6)
    # a frozen task drops out entirely
    assert float(w(losses, torch.tensor([1.0, 0.0, 1.0])).detach()) == pytest.approx(
        np.exp(-0.2) * 1.5 + 0.1 + np.exp(-1.0) * 0.3 + 0.5, rel=1e-6
    )
    assert w.weights().tolist() == pytest.approx([np.exp(-0.2), 0.5 * np.exp(0.5), np.exp(-1.0)], rel=1e-6)


def test_learned_weighting_sums_to_one_with_l2_penalty():
    w = LearnedWeighting(_spec("learned"), lam=0.3)
    w.logits.data = torch.tensor([0.0, 1.0, -1.0])
    losses = torch.tensor([2.0, 1.0, 0.5])
    p = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    expected = (p * [2.0, 1.0, 0.5]).sum() + 0.3 * (p**2).sum()
    assert float(w(losses, torch.ones(3)).detach()) == pytest.approx(expected, rel=1e-6)
    assert float(w.weights().sum()) == pytest.approx(1.0)
    # gradient descent on the weights moves mass towards the task with the smaller loss
    opt = torch.optim.SGD(w.parameters(), lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        w(losses, torch.ones(3)).backward()
        opt.step()
    assert int(w.weights().argmax()) == 2


def test_multitask_loss_fixed_weights_and_frozen_tasks():
    spec = _spec()
    targets = {"cls": np.array([0, 1, 2]), "age": np.zeros(3), "tags": np.zeros((3, 4))}
    loss = MultiTaskLoss(spec, targets)
    outputs = {"cls": torch.randn(3, 3), "age": torch.randn(3), "tags": torch.randn(3, 4)}
    batch = {"cls": torch.tensor([0, 1, 2]), "age": torch.zeros(3), "tags": torch.zeros(3, 4)}
    total, each = loss(outputs, batch)
    assert float(total) == pytest.approx(float(each.sum()), rel=1e-6)
    loss.active[0] = 0.0
    total, each = loss(outputs, batch)
    assert float(total) == pytest.approx(float(each[1:].sum()), rel=1e-6)


def test_balanced_weights():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 1.0])
    pw = balanced_pos_weight(np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32))
    assert pw.tolist() == pytest.approx([3.0, 3.0])


@pytest.mark.parametrize("class_weights", ["none", "balanced"])
def test_soft_one_hot_targets_equal_hard_labels_with_smoothing_and_class_weights(class_weights):
    import torch.nn.functional as F

    from mtlkaggle.losses import TaskLoss

    task = _spec(label_smoothing=0.1, class_weights=class_weights).tasks[0]
    loss = TaskLoss(task, np.array([0, 0, 0, 1, 2, 2]))
    logits = torch.tensor([[2.0, -1.0, 0.3], [0.1, 0.2, 0.3], [-1.0, 0.5, 1.5], [0.0, 3.0, -2.0]])
    labels = torch.tensor([0, 2, 2, 1])
    weight = loss.weight if loss.weight.numel() else None
    hard = F.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1)
    assert float(loss(logits, labels)) == pytest.approx(float(hard), rel=1e-6)
    assert float(loss(logits, F.one_hot(labels, 3).float())) == pytest.approx(float(hard), rel=1e-6)


def test_mixed_targets_give_the_lambda_weighted_loss_of_each_partner():
    import torch.nn.functional as F

    from mtlkaggle.losses import TaskLoss
    from mtlkaggle.mixing import mix_targets

    spec = _spec(label_smoothing=0.1)
    logits = torch.tensor([[2.0, -1.0, 0.3], [0.1, 0.2, 0.3], [-1.0, 0.5, 1.5]])
    tag_logits = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.3, 0.3, -1.0, 2.0], [0.0, 1.0, 1.0, -1.0]])
    targets = {
        "cls": torch.tensor([0, 2, 1]),
        "age": torch.tensor([-1.0, 0.5, 2.0]),
        "tags": torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0]]),
    }
    perm, lam = torch.tensor([2, 0, 1]), 0.7
    mixed = mix_targets(targets, spec.tasks, perm, lam)
    cls = TaskLoss(spec.tasks[0], np.array([0, 1, 2]))
    a = F.cross_entropy(logits, targets["cls"], label_smoothing=0.1)
    b = F.cross_entropy(logits, targets["cls"][perm], label_smoothing=0.1)
    assert float(cls(logits, mixed["cls"])) == pytest.approx(lam * float(a) + (1 - lam) * float(b), rel=1e-6)
    # BCE is linear in its target (pos_weight too): the mixed loss is the mixed losses
    tags = TaskLoss(spec.tasks[2].model_copy(update={"class_weights": "balanced"}), targets["tags"].numpy())
    a, b = tags(tag_logits, targets["tags"]), tags(tag_logits, targets["tags"][perm])
    assert float(tags(tag_logits, mixed["tags"])) == pytest.approx(lam * float(a) + (1 - lam) * float(b))
    # regression targets mix linearly; the loss is taken against the mixed value
    expected_age = [0.7 * -1 + 0.3 * 2.0, 0.7 * 0.5 - 0.3 * 1, 0.7 * 2 + 0.3 * 0.5]
    assert mixed["age"].tolist() == pytest.approx(expected_age)


def test_binary_task_bce_with_pos_weight_by_hand():
    from mtlkaggle.spec import TaskSpec

    task = TaskSpec(name="t", kind="binary", column="c", pos_weight=3.0)
    loss = TaskLoss(task, np.array([[1.0], [0.0]], dtype=np.float32))
    logits = torch.zeros(2, 1)
    target = torch.tensor([[1.0], [0.0]])
    # each row: log(2) at logit 0; the positive's term is weighed 3x -> (3 log 2 + log 2) / 2
    assert float(loss(logits, target)) == pytest.approx(2 * np.log(2.0))
    plain = TaskLoss(TaskSpec(name="t", kind="binary", column="c"), np.zeros((2, 1), np.float32))
    assert float(plain(logits, target)) == pytest.approx(np.log(2.0))

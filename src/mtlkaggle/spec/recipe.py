"""The ``[train]``, ``[augment]`` and ``[predict]`` sections: the recipe and inference."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mtlkaggle.spec.base import _Strict


class AugmentSpec(_Strict):
    """The augmentation recipe, declared by its strengths, and where it runs (``on``)."""

    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    crop_scale: tuple[float, float] = (0.85, 1.0)  # keep hems and sleeves in the crop
    rotate: float = Field(5.0, ge=0, le=180)
    shift: float = Field(0.03, ge=0, le=0.5)
    color_jitter: float = Field(0.1, ge=0, le=1)
    eval_resize: Literal["pad", "squash"] = "squash"  # as the training crops are resized
    # batch mixing (see mixing.py): every task's target is mixed with the images
    mix: Literal["none", "mixup", "cutmix"] = "none"
    mix_prob: float = Field(1.0, ge=0, le=1)  # share of batches that are mixed
    mix_alpha: float | None = Field(None, gt=0)  # Beta(alpha, alpha); default 0.2 mixup, 1.0 cutmix
    mix_off_epochs: int = Field(0, ge=0)  # the last epochs train unmixed

    @property
    def resolved_mix_alpha(self) -> float:
        """``mix_alpha``, or the usual value for the chosen mix (mixup 0.2, cutmix 1.0)."""
        return self.mix_alpha if self.mix_alpha is not None else (1.0 if self.mix == "cutmix" else 0.2)

    # where decoding and augmentation run: 'device' (batched on the training device, see
    # data/device.py), 'cpu' (albumentations in DataLoader workers), 'auto' (device on CUDA)
    on: Literal["auto", "cpu", "device"] = "auto"


class TrainSpec(_Strict):
    """The training recipe; every field can be overridden on the command line."""

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None
    img_size: int = Field(224, ge=16)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    backbone_lr_mult: float = Field(1.0, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_epochs: float = Field(0.3, ge=0)
    scheduler: Literal["cosine", "plateau"] = "cosine"
    weighting: Literal["fixed", "uncertainty", "learned"] = "fixed"
    learned_lambda: float = Field(0.1, ge=0)
    early_freeze: int | None = Field(None, ge=1)
    early_stopping: int | None = Field(None, ge=1)
    grad_clip: float = Field(0.0, ge=0)  # 0: off
    accumulate: int = Field(1, ge=1)
    amp: bool = True
    amp_dtype: Literal["auto", "bf16", "fp16"] = "auto"  # auto: bf16 where supported, else fp16
    ema: bool = False
    ema_decay: float = Field(0.998, gt=0, lt=1)
    compile: bool = False
    channels_last: bool = True
    neck: int = Field(0, ge=0)
    drop_rate: float = Field(0.2, ge=0, lt=1)
    num_workers: int | None = Field(None, ge=0)  # None: the usable CPUs minus one, at most 16
    seed: int = 42
    n_splits: int = Field(5, ge=2)


TTA_VIEW = r"^(identity|hflip|vflip|zoom:[0-9.]+|hflip\+zoom:[0-9.]+|crop:0?\.[0-9]+:(tl|tr|bl|br|c))$"


class PredictSpec(_Strict):
    """Inference: test-time augmentation views (beside the plain view) and batch size."""

    tta: list[Annotated[str, StringConstraints(pattern=TTA_VIEW)]] = Field(
        default_factory=lambda: ["hflip"],
        description="Views averaged with the plain one under --tta (predict, bundles, notebooks): "
        "hflip, vflip, zoom:S, hflip+zoom:S, crop:F:POS; default ['hflip']; [] or ['identity'] = the "
        "plain view only, for classes a flip changes (digits, characters).",
    )
    batch_size: int = Field(64, ge=1, description="Images per inference batch (default 64).")
    threshold_candidates: int = Field(
        99, ge=3, description="Thresholds tried per label when tuning (default 99)."
    )

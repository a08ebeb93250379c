"""The ``[train]``, ``[augment]`` and ``[predict]`` sections: the recipe and inference."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mtlkaggle.spec.base import _Strict


class AugmentSpec(_Strict):
    """The augmentation recipe, declared by its strengths, and where it runs (``on``)."""

    hflip: float = Field(0.5, ge=0, le=1, description="Probability of a horizontal flip (default 0.5).")
    vflip: float = Field(0.0, ge=0, le=1, description="Probability of a vertical flip (default 0).")
    # keep hems and sleeves in the crop
    crop_scale: tuple[float, float] = Field(
        (0.85, 1.0),
        description="Random resized crop: min and max share of the image area kept, e.g. [0.7, 1.0].",
    )
    rotate: float = Field(5.0, ge=0, le=180, description="Largest random rotation in degrees (default 5).")
    shift: float = Field(
        0.03, ge=0, le=0.5, description="Largest random shift, as a share of the side (default 0.03)."
    )
    color_jitter: float = Field(
        0.1, ge=0, le=1, description="Strength of brightness/contrast/saturation jitter (default 0.1)."
    )
    # as the training crops are resized
    eval_resize: Literal["pad", "squash"] = Field(
        "squash", description="How eval images reach img_size: squash (default) or pad to a square first."
    )
    # batch mixing (see mixing.py): every task's target is mixed with the images
    mix: Literal["none", "mixup", "cutmix"] = Field(
        "none", description="Batch mixing: none (default), mixup or cutmix; every task's target is mixed too."
    )
    mix_prob: float = Field(1.0, ge=0, le=1, description="Share of batches that are mixed (default 1).")
    mix_alpha: float | None = Field(
        None, gt=0, description="Beta(alpha, alpha) of the mix; default 0.2 for mixup, 1.0 for cutmix."
    )
    mix_off_epochs: int = Field(0, ge=0, description="The last N epochs train unmixed (default 0).")

    @property
    def resolved_mix_alpha(self) -> float:
        """``mix_alpha``, or the usual value for the chosen mix (mixup 0.2, cutmix 1.0)."""
        return self.mix_alpha if self.mix_alpha is not None else (1.0 if self.mix == "cutmix" else 0.2)

    # where decoding and augmentation run: 'device' (batched on the training device, see
    # data/device.py), 'cpu' (albumentations in DataLoader workers), 'auto' (device on CUDA)
    on: Literal["auto", "cpu", "device"] = Field(
        "auto", description="Where decoding and augmentation run: auto (device on CUDA), cpu or device."
    )


class TrainSpec(_Strict):
    """The training recipe; every field can be overridden on the command line."""

    backbone: str = Field(
        "efficientnet_lite0",
        description='timm model name, e.g. "convnext_tiny" (default efficientnet_lite0).',
    )
    pretrained: bool = Field(True, description="Start from the pretrained weights (default true).")
    weights: str | None = Field(
        None, description="Local checkpoint file for the backbone, instead of a download (default unset)."
    )
    img_size: int = Field(
        224, ge=16, description="Side of the square training images in pixels (default 224)."
    )
    epochs: int = Field(12, ge=1, description="Training epochs per fold (default 12).")
    batch_size: int = Field(32, ge=1, description="Images per batch and device (default 32).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate of the heads (default 1e-3).")
    backbone_lr_mult: float = Field(
        1.0, gt=0, le=1, description="The backbone learns at lr times this (default 1)."
    )
    weight_decay: float = Field(
        0.01, ge=0, description="AdamW weight decay, not on biases and norms (default 0.01)."
    )
    warmup_epochs: float = Field(
        0.3, ge=0, description="Linear warm-up length in epochs, may be fractional (default 0.3)."
    )
    scheduler: Literal["cosine", "plateau"] = Field(
        "cosine", description="Learning-rate schedule after warm-up: cosine (default) or plateau."
    )
    weighting: Literal["fixed", "uncertainty", "learned"] = Field(
        "fixed", description="Loss balancing: fixed (loss_weight), uncertainty (Kendall 2018) or learned."
    )
    learned_lambda: float = Field(
        0.1, ge=0, description="weighting=learned: L2 penalty on the task weights (default 0.1)."
    )
    early_freeze: int | None = Field(
        None, ge=1, description="Freeze a task whose val loss has not improved for N epochs (default off)."
    )
    early_stopping: int | None = Field(
        None,
        ge=1,
        description="Stop a fold when the monitored score has not improved for N epochs (default off).",
    )
    grad_clip: float = Field(
        0.0, ge=0, description="Clip the gradient norm at this value; 0 (default) is off."
    )
    accumulate: int = Field(
        1, ge=1, description="Batches whose gradients are summed before a step (default 1)."
    )
    amp: bool = Field(True, description="Mixed precision on CUDA (default true).")
    amp_dtype: Literal["auto", "bf16", "fp16"] = Field(
        "auto", description="AMP type: auto (bf16 where supported, else fp16), bf16 or fp16."
    )
    ema: bool = Field(
        False, description="Keep an exponential moving average of the weights for eval (default false)."
    )
    ema_decay: float = Field(0.998, gt=0, lt=1, description="EMA decay per step (default 0.998).")
    compile: bool = Field(False, description="torch.compile the model (default false).")
    channels_last: bool = Field(True, description="Channels-last memory format on CUDA (default true).")
    neck: int = Field(
        0, ge=0, description="Width of a shared layer between backbone and heads; 0 (default): none."
    )
    drop_rate: float = Field(0.2, ge=0, lt=1, description="Dropout before the heads (default 0.2).")
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader workers; default: the usable CPUs minus one, at most 16."
    )
    seed: int = Field(42, description="Seed of weights, data order and augmentation (default 42).")
    n_splits: int = Field(5, ge=2, description="Folds made by `mtlkaggle folds` (default 5).")


TTA_VIEW = r"^(identity|hflip|vflip|zoom:[0-9.]+|hflip\+zoom:[0-9.]+|crop:0?\.[0-9]+:(tl|tr|bl|br|c))$"


class PredictSpec(_Strict):
    """Inference: test-time augmentation views (beside the plain view) and batch size."""

    tta: list[str] = Field(
        default_factory=lambda: ["hflip"],
        description="Views averaged with the plain one under --tta (predict, bundles, notebooks): "
        "hflip, vflip, zoom:S, hflip+zoom:S, crop:F:POS; default ['hflip']; [] or ['identity'] = the "
        "plain view only, for classes a flip changes (digits, characters).",
    )
    batch_size: int = Field(64, ge=1, description="Images per inference batch (default 64).")

    @field_validator("tta")
    @classmethod
    def _known_views(cls, views: list[str]) -> list[str]:
        for view in views:
            if not re.match(TTA_VIEW, view):
                raise ValueError(
                    f"unknown view {view!r}; valid views: identity, hflip, vflip, zoom:S (S > 0), "
                    "hflip+zoom:S, crop:F:POS (0 < F <= 1, POS tl/tr/bl/br/c)"
                )
        return views

    threshold_candidates: int = Field(
        99, ge=3, description="Thresholds tried per label when tuning on OOF predictions (default 99)."
    )

"""The competition spec: one TOML file per competition, validated with pydantic.

A spec says where the data lives, how its label files are laid out, which tasks a model
predicts (and how each is scored), the training recipe, and the submission files Kaggle expects.
Everything competition-specific lives here; the pipeline stages only read a :class:`Spec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from mtlkaggle.errors import UserError

TaskKind = Literal["multiclass", "multilabel", "regression"]

# Metrics each task kind may name; the first one listed in a task is its primary score.
METRICS_BY_KIND: dict[str, set[str]] = {
    "multiclass": {"accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "class_accuracy"},
    "multilabel": {"mean_f1", "macro_f1", "micro_f1", "accuracy"},
    "regression": {"mae", "rmse"},
}
DEFAULT_LOSS = {"multiclass": "ce", "multilabel": "bce", "regression": "smooth_l1"}
LOSSES_BY_KIND = {
    "multiclass": {"ce"},
    "multilabel": {"bce"},
    "regression": {"l1", "mse", "smooth_l1"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeepSpec(_Strict):
    """Keep only rows whose numeric ``column`` lies in [min, max] (e.g. CORAL's ages 21-60)."""

    column: str
    min: float = float("-inf")
    max: float = float("inf")


class DataSpec(_Strict):
    """Where the label files and images are, and how to read them.

    Formats (each read from the competition's original files, see ``formats.py``):

    - ``csv``: ``train``/``val``/``test``/``test_labels`` are CSV files with a header.
    - ``lists``: ``train``/``val``/``test`` list one image path a line; ``labels`` maps a split to a
      file of whitespace-separated integers a line, one per task in spec order (AI6126).
    - ``utkface``: ``train`` is a folder of ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` files.
    - ``pixels_csv``: ``train`` is a CSV whose ``pixels_column`` holds each image as
      space-separated grayscale values (``pixels_shape``), read into memory.
    - ``celeba``: ``train`` is ``list_attr_celeba.txt``, ``partition`` is ``list_eval_partition.txt``
      (0 train, 1 val, 2 test).

    ``holdout`` carves a deterministic labelled test split (by a hash of the id) out of a format
    that has none; its labels then serve ``test_labels``.
    """

    format: Literal["csv", "lists", "utkface", "pixels_csv", "celeba"] = "csv"
    train: str
    val: str | None = None
    test: str | None = None
    test_labels: str | None = Field(
        None, description="Label file for the test split, for local scoring (never trained on)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="lists: split -> label file.")
    partition: str | None = None
    pixels_column: str = "pixels"
    pixels_shape: tuple[int, int] = (48, 48)
    holdout: float | None = Field(None, gt=0, lt=1)
    keep: list[KeepSpec] = Field(default_factory=list)
    id_column: str
    image_column: str
    image_dir: str = "."
    sep: str = ","
    kaggle: str | None = Field(None, description="Kaggle competition to download the data from.")


class TaskSpec(_Strict):
    """One prediction target and its head, loss and metrics."""

    name: str
    kind: TaskKind
    column: str | None = None
    columns: list[str] | None = None
    num_classes: int | None = Field(None, ge=1)
    classes: list[str] | None = None
    encoding: Literal["index", "name", "sign", "indices", "columns", "value"] | None = None
    label_sep: str = " "
    metrics: list[str] = Field(default_factory=list)
    loss: str | None = None
    loss_weight: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "none"
    hidden: int = Field(0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    at_least_one: bool = Field(False, description="Multilabel: an empty row gets its most probable label.")

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        kind = self.kind
        allowed_enc = {
            "multiclass": {"index", "name", "sign"},
            "multilabel": {"indices", "columns"},
            "regression": {"value"},
        }[kind]
        if self.encoding is not None and self.encoding not in allowed_enc:
            raise ValueError(f"encoding must be one of {sorted(allowed_enc)} for a {kind} task")
        if kind == "multilabel" and self.encoding == "columns":
            if not self.columns:
                raise ValueError("a multilabel task with encoding='columns' needs 'columns'")
        elif not self.column:
            raise ValueError(f"task '{self.name}' needs 'column'")
        if kind != "regression" and self.size is None:
            raise ValueError(f"task '{self.name}' needs 'num_classes' or 'classes'")
        if self.classes and self.num_classes and len(self.classes) != self.num_classes:
            raise ValueError(
                f"task '{self.name}': {len(self.classes)} classes named but num_classes={self.num_classes}"
            )
        bad = [m for m in self.metrics if m not in METRICS_BY_KIND[kind]]
        if bad:
            raise ValueError(
                f"unknown metric {bad} for a {kind} task; choose from {sorted(METRICS_BY_KIND[kind])}"
            )
        if self.loss is not None and self.loss not in LOSSES_BY_KIND[kind]:
            raise ValueError(f"loss must be one of {sorted(LOSSES_BY_KIND[kind])} for {kind}")
        return self

    @property
    def size(self) -> int | None:
        """Number of classes (multiclass), labels (multilabel); 1 for regression."""
        if self.kind == "regression":
            return 1
        if self.num_classes:
            return self.num_classes
        if self.classes:
            return len(self.classes)
        if self.kind == "multilabel" and self.columns:
            return len(self.columns)
        return None

    @property
    def resolved_encoding(self) -> str:
        """The label encoding, with the kind's default filled in."""
        if self.encoding:
            return self.encoding
        return {"multiclass": "index", "multilabel": "indices", "regression": "value"}[self.kind]

    @property
    def resolved_metrics(self) -> list[str]:
        """The task's metrics; the kind's default when none are named."""
        default = {"multiclass": ["accuracy"], "multilabel": ["mean_f1"], "regression": ["mae"]}
        return list(self.metrics) or default[self.kind]

    @property
    def resolved_loss(self) -> str:
        """The task's loss name, with the kind's default filled in."""
        return self.loss or DEFAULT_LOSS[self.kind]

    @property
    def label_names(self) -> list[str]:
        """Human-readable names of the classes or labels (indices when unnamed)."""
        if self.classes:
            return list(self.classes)
        if self.kind == "multilabel" and self.columns:
            return list(self.columns)
        return [str(i) for i in range(self.size or 1)]


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


TTA_VIEW = r"^(hflip|vflip|zoom:[0-9.]+|hflip\+zoom:[0-9.]+|crop:0?\.[0-9]+:(tl|tr|bl|br|c))$"


class PredictSpec(_Strict):
    """Inference: test-time augmentation views (beside the plain view) and batch size."""

    tta: list[Annotated[str, StringConstraints(pattern=TTA_VIEW)]] = Field(default_factory=lambda: ["hflip"])
    batch_size: int = Field(64, ge=1)
    threshold_candidates: int = Field(99, ge=3)


class SubmissionSpec(_Strict):
    """One file Kaggle expects: its name, columns, and the competition it is uploaded to."""

    file: str
    columns: dict[str, str] = Field(
        ..., description="Output column name -> task name (in file order, after the id)."
    )
    id_column: str | None = None
    header: bool = True
    sep: str = ","
    kaggle: str | None = Field(None, description="Kaggle competition slug.")
    label_format: Literal["index", "name"] = "index"
    float_format: str = ".4f"


class Spec(_Strict):
    """A whole competition."""

    name: str
    description: str = ""
    data_dir: str
    data: DataSpec
    tasks: list[TaskSpec] = Field(..., min_length=1)
    train: TrainSpec = Field(default_factory=TrainSpec)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    predict: PredictSpec = Field(default_factory=PredictSpec)
    submissions: list[SubmissionSpec] = Field(default_factory=list)
    monitor: str | None = Field(
        None, description="'task/metric' to pick the best epoch; default: mean of primaries."
    )

    @model_validator(mode="after")
    def _check(self) -> Spec:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for sub in self.submissions:
            unknown = [t for t in sub.columns.values() if t not in names]
            if unknown:
                raise ValueError(f"submission '{sub.file}' names unknown task(s) {unknown}")
        if self.monitor is not None:
            task, _, metric = self.monitor.partition("/")
            if task not in names or metric not in self.task(task).resolved_metrics:
                raise ValueError(f"monitor '{self.monitor}' is not 'task/metric' of this spec")
        return self

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def data_path(self) -> Path:
        """``data_dir`` as a Path (relative paths are relative to the working directory)."""
        return Path(self.data_dir)


_OVERRIDABLE = {"train": TrainSpec, "augment": AugmentSpec}


def with_overrides(spec: Spec, section: str, **overrides: object) -> Spec:
    """A copy of ``spec`` whose ``section`` (``train`` or ``augment``) fields are replaced by the
    non-None ``overrides`` (the command line's options).

    Raises:
        UserError: when an override is out of range or not allowed (e.g. ``--epochs 0``,
            ``--mix blend``), naming the option.
    """
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return spec
    model = _OVERRIDABLE[section]
    try:
        value = model.model_validate({**getattr(spec, section).model_dump(), **changes})
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    return spec.model_copy(update={section: value})


def with_train_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``train`` section."""
    return with_overrides(spec, "train", **overrides)


def with_augment_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``augment`` section."""
    return with_overrides(spec, "augment", **overrides)


def resolve_spec_path(comp: str, root: Path | None = None) -> Path:
    """Turn a COMP argument (a name under ``competition/`` or a path to a .toml) into a path."""
    root = root or Path.cwd()
    as_path = Path(comp)
    if as_path.suffix == ".toml":
        if not as_path.is_file():
            raise UserError(f"competition file not found: {as_path}")
        return as_path
    candidate = root / "competition" / f"{comp}.toml"
    if candidate.is_file():
        return candidate
    packaged = {p.stem: p for p in packaged_specs()}
    if comp in packaged:  # the copy inside the installed package (`pip install` brings no competition/)
        return packaged[comp]
    known = sorted({p.stem for p in (root / "competition").glob("*.toml")} | set(packaged))
    hint = f"known: {', '.join(known)}" if known else f"no competition/ folder in {root}"
    raise UserError(f"unknown competition '{comp}' ({hint}); pass a name or a path to a .toml")


PACKAGED_SPECS = Path(__file__).resolve().parent / "competitions"  # filled by setup.py's build_py


def packaged_specs() -> list[Path]:
    """The competition files shipped with mtlkaggle.

    In a wheel they are ``mtlkaggle/competitions/*.toml`` (copied at build time); in a checkout or
    an editable install, the repository's ``competition/`` folder itself.
    """
    if PACKAGED_SPECS.is_dir():
        return sorted(PACKAGED_SPECS.glob("*.toml"))
    checkout = PACKAGED_SPECS.parents[2] / "competition"
    has_project = (PACKAGED_SPECS.parents[2] / "pyproject.toml").is_file()
    return sorted(checkout.glob("*.toml")) if has_project else []


def copy_template(
    template: str, name: str | None = None, force: bool = False, root: Path | None = None
) -> Path:
    """Copy the packaged ``template`` to ``competition/NAME.toml`` (its ``name`` line set to NAME).

    Raises:
        UserError: an unknown template, a bad name, or an existing file without ``force``.
    """
    import re

    packaged = {p.stem: p for p in packaged_specs()}
    if template not in packaged:
        raise UserError(f"unknown template '{template}'; packaged: {', '.join(packaged) or 'none'}")
    name = name or template
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"competition name '{name}': use letters, digits, '-', '_' or '.'")
    dest = (root or Path.cwd()) / "competition" / f"{name}.toml"
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists; edit it, pick another NAME, or pass --force")
    text = packaged[template].read_text(encoding="utf-8")
    head, sep, tables = text.partition("\n[")  # only the top-level name, not a task's
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', head, count=1) + sep + tables
    from mtlkaggle.io import write_text_atomic

    write_text_atomic(dest, text)
    return dest


def load_spec(comp: str | Path, data_dir: str | Path | None = None) -> Spec:
    """Load and validate a competition spec.

    Args:
        comp: A name under ``competition/`` or a path to a ``.toml`` file.
        data_dir: Overrides the spec's ``data_dir`` (the CLI's ``--data-dir``).

    Raises:
        UserError: naming the file, the field and what is expected.
    """
    from mtlkaggle.readback import read_text

    path = resolve_spec_path(str(comp))
    try:
        raw = tomllib.loads(read_text(path, "fix the competition file", "competition file"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    raw.setdefault("name", path.stem)
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        raise UserError(f"{path}: {_describe(e, raw)}") from None


def _describe(error: ValidationError, raw: dict) -> str:
    """One line for the first validation error: field path (with task names) and the problem."""
    first = error.errors()[0]
    parts: list[str] = []
    node: object = raw
    for loc in first["loc"]:
        if isinstance(loc, int) and isinstance(node, list):
            item = node[loc] if loc < len(node) else None
            label = item.get("name") or item.get("file") if isinstance(item, dict) else None
            parts[-1] = f"{parts[-1]}[{label!r}]" if label else f"{parts[-1]}[{loc}]"
            node = item
        else:
            parts.append(str(loc))
            node = node.get(loc) if isinstance(node, dict) else None
    where = ".".join(parts) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"field '{where}': {msg}{more}"

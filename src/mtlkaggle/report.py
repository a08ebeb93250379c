"""``mtlkaggle report``: the pictures and tables a person decides from, for one training run.

Writes ``reports/COMP/RUN/``: class distributions, training curves per fold, confusion matrices
and per-label F1 from out-of-fold predictions, predicted-vs-true plots for regression, and
``report.md`` with the per-fold and mean scores of every metric, the test (holdout) scores of the
run's submission files where labels exist, the tuned thresholds per label, time and throughput
per fold, the environment and command of the run, the configuration and the figures.
Matplotlib runs with the Agg backend: no display is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.io import atomic_path, write_text_atomic
from mtlkaggle.metrics import per_label_f1
from mtlkaggle.paths import RunLayout, submissions_dir
from mtlkaggle.readback import numeric_columns, read_json_object, read_table, read_text
from mtlkaggle.spec import Spec
from mtlkaggle.thresholds import apply_thresholds, collect_oof, read_thresholds_file


@dataclass
class Report:
    """What ``make_report`` wrote: the folder, the figures and the score table."""

    folder: Path
    figures: list[Path] = field(default_factory=list)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    test_scores: pd.DataFrame | None = None  # the run's submission files against the test labels


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def fold_scores(spec: Spec, run_dir: Path) -> pd.DataFrame:
    """Every metric at each fold's best epoch (from its metrics.csv), plus the mean row."""
    rows = []
    for fold in RunLayout(run_dir).trained_folds():
        if fold.name == "full":  # a full-data fit has no validation scores
            continue
        folder = fold.dir
        metrics = read_metrics(spec, fold.metrics)
        best = metrics.loc[metrics["score"].idxmax()]
        row = {"fold": folder.name.removeprefix("fold"), "best_epoch": int(best["epoch"])}
        for task in spec.tasks:
            for metric in task.resolved_metrics:
                row[f"{task.name}/{metric}"] = float(best[f"val/{task.name}/{metric}"])
        rows.append(row)
    if not rows:
        raise UserError(f"{run_dir}: no trained folds; run `mtlkaggle train {spec.name}` first")
    frame = pd.DataFrame(rows)
    numbered = frame[frame["fold"].str.isdigit()]  # 'val' and 'full' are not cross-validation folds
    if len(numbered) > 1:
        mean = numbered.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        frame = pd.concat(
            [frame, pd.DataFrame([{"fold": "mean", "best_epoch": None, **mean}])], ignore_index=True
        )
    return frame


def read_metrics(spec: Spec, path: Path) -> pd.DataFrame:
    """A fold's ``metrics.csv`` with the columns the report draws, each numeric.

    Raises:
        UserError: a missing, damaged or incomplete file (naming the file and the fix).
    """
    fold = path.parent.name.removeprefix("fold")
    fix = f"train that fold again (`mtlkaggle train {spec.name} --fold {fold} --overwrite`)"
    columns = ["epoch", "score", "train/loss", "val/loss"]
    for task in spec.tasks:
        columns += [f"train/loss/{task.name}", f"val/loss/{task.name}", f"weight/{task.name}"]
        columns += [f"val/{task.name}/{metric}" for metric in task.resolved_metrics]
    frame = read_table(path, fix, columns, "metrics file")
    numeric_columns(frame, path, columns, fix, allow_nan=True)  # a metric may be undefined (NaN)
    return frame


def read_run_config(spec: Spec, run_dir: Path) -> Spec | None:
    """The spec a run saved in its ``config.json`` (None when it has none).

    Raises:
        UserError: a damaged file or one that is not a valid competition spec.
    """
    from pydantic import ValidationError

    path = RunLayout(run_dir).config
    if not path.exists():
        return None
    fix = f"delete it and train again (`mtlkaggle train {spec.name} --run {run_dir.name}`)"
    try:
        return Spec.model_validate(read_json_object(path, fix, "run config"))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise UserError(f"{path}: field '{where}': {first['msg']}; {fix}") from None


def read_skipped(run_dir: Path) -> dict[str, list[str]]:
    """Per fold, the images its training skipped (``skipped.txt``, written with --skip-bad-images)."""
    out = {}
    for fold in RunLayout(run_dir).trained_folds():
        path = fold.dir / "skipped.txt"
        if path.is_file():
            fix = "it is only informative: delete it to go on"
            out[fold.name] = [line for line in read_text(path, fix, "skipped list").splitlines() if line]
    return out


def plot_distributions(spec: Spec, out: Path) -> Path:
    """Bar charts of class counts / label frequencies per task, train vs test where known."""
    plt = _plt()
    splits = {"train": read_split(spec, "train")}
    if has_split(spec, "test_labels"):
        splits["test"] = read_split(spec, "test_labels")
    fig, axes = plt.subplots(len(spec.tasks), 1, figsize=(9, 3.2 * len(spec.tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], spec.tasks, strict=True):
        if task.kind == "regression":
            for name, table in splits.items():
                ax.hist(table.targets[task.name], bins=30, alpha=0.6, density=True, label=name)
            ax.set_xlabel(task.name)
        else:
            x = np.arange(task.size)
            width = 0.8 / len(splits)
            for i, (name, table) in enumerate(splits.items()):
                y = table.targets[task.name]
                share = (
                    np.bincount(y, minlength=task.size) / len(y) if task.kind == "multiclass" else y.mean(0)
                )
                ax.bar(x + i * width, share, width, label=f"{name} ({len(y)})")
            ax.set_xticks(x + width * (len(splits) - 1) / 2, task.label_names, rotation=45, ha="right")
            ax.set_ylabel("share of rows" if task.kind == "multiclass" else "label frequency")
        ax.set_title(f"{task.name} ({task.kind})")
        ax.legend()
    fig.tight_layout()
    return _save(fig, out / "class_distribution.png")


def plot_curves(spec: Spec, folder: Path, out: Path, name: str | None = None) -> Path:
    """One fold's training curves (see :func:`curves_figure`) as ``curves_{NAME or fold folder}.png``."""
    label = name or folder.name
    fig = curves_figure(spec, read_metrics(spec, folder / "metrics.csv"), f"{spec.name} {label}")
    return _save(fig, out / f"curves_{label}.png")


def _weights_change(spec: Spec, m: pd.DataFrame) -> bool:
    columns = [f"weight/{t.name}" for t in spec.tasks if f"weight/{t.name}" in m.columns]
    return any(float(np.ptp(m[c].to_numpy())) > 1e-9 for c in columns)


def curves_figure(spec: Spec, m: pd.DataFrame, title: str):
    """Total and per-task loss (train, val) and each task's metrics per epoch, axes labelled.

    The task-weights panel is drawn only when the weights change during training (uncertainty or
    learned weighting); fixed weights would be a flat line.
    """
    plt = _plt()
    weights = _weights_change(spec, m)
    panels = 1 + len(spec.tasks) + int(weights)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(m["epoch"], m["train/loss"], "o-", label="train (weighted total)")
    ax.plot(m["epoch"], m["val/loss"], "s-", label="val (sum over tasks)")
    ax.set_title("total loss")
    ax.set_ylabel("loss")
    for task, ax in zip(spec.tasks, axes[0, 1 : 1 + len(spec.tasks)], strict=True):
        ax.plot(m["epoch"], m[f"train/loss/{task.name}"], "o--", label="train loss")
        ax.plot(m["epoch"], m[f"val/loss/{task.name}"], "s--", label="val loss")
        twin = ax.twinx()
        for metric, colour in zip(
            task.resolved_metrics, ("tab:green", "tab:red", "tab:purple", "tab:brown"), strict=False
        ):
            twin.plot(m["epoch"], m[f"val/{task.name}/{metric}"], "^-", label=f"val {metric}", color=colour)
            if f"train/{task.name}/{metric}" in m.columns:
                twin.plot(
                    m["epoch"], m[f"train/{task.name}/{metric}"], "v:", label=f"train {metric}", color=colour
                )
        twin.set_ylabel(f"metric ({', '.join(task.resolved_metrics)})")
        twin.legend(fontsize=7, loc="center right")
        ax.set_title(task.name)
        ax.set_ylabel(f"{task.name} loss")
    if weights:
        ax = axes[0, -1]
        for task in spec.tasks:
            ax.plot(m["epoch"], m[f"weight/{task.name}"], "o-", label=task.name)
        ax.set_title(f"task weights ({spec.train.weighting})")
        ax.set_ylabel("loss weight")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(task, y: np.ndarray, probs: np.ndarray, out: Path) -> Path:
    """Row-normalized confusion matrix from OOF predictions, per-class accuracy on the axis."""
    plt = _plt()
    pred = probs.argmax(axis=1)
    counts = np.zeros((task.size, task.size))
    np.add.at(counts, (y, pred), 1)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * task.size, 0.8 + 0.6 * task.size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(task.size):
        for j in range(task.size):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    names = [f"{n} ({norm[i, i]:.0%})" for i, n in enumerate(task.label_names)]
    ax.set_yticks(range(task.size), names)
    ax.set_xticks(range(task.size), task.label_names, rotation=45, ha="right")
    ax.set_ylabel("true (per-class accuracy)")
    ax.set_xlabel("predicted")
    ax.set_title(f"{task.name}: OOF accuracy {float((pred == y).mean()):.3f}")
    return _save(fig, out / f"confusion_{task.name}.png")


def plot_label_f1(task, y: np.ndarray, probs: np.ndarray, thresholds, out: Path) -> Path:
    """Per-label F1 on OOF predictions, at 0.5 and at the tuned thresholds."""
    plt = _plt()
    at_half = per_label_f1(y, apply_thresholds(probs, 0.5))
    tuned = per_label_f1(y, apply_thresholds(probs, thresholds))
    x = np.arange(task.size)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * task.size + 2), 3.6))
    ax.bar(x - 0.2, at_half, 0.4, label="threshold 0.5")
    ax.bar(x + 0.2, tuned, 0.4, label="tuned thresholds")
    ax.set_xticks(x, task.label_names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (out of fold)")
    ax.set_title(f"{task.name}: per-label F1")
    ax.legend()
    return _save(fig, out / f"f1_{task.name}.png")


def plot_regression(task, y: np.ndarray, pred: np.ndarray, out: Path) -> Path:
    """Predicted vs true scatter and the error histogram (original units)."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.scatter(y, pred, s=6, alpha=0.5)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    left.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    left.set_xlabel(f"true {task.name}")
    left.set_ylabel(f"predicted {task.name}")
    right.hist(pred - y, bins=40)
    right.set_xlabel("error (predicted - true)")
    fig.suptitle(f"{task.name}: OOF MAE {float(np.abs(pred - y).mean()):.3f}")
    fig.tight_layout()
    return _save(fig, out / f"regression_{task.name}.png")


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def make_report(spec: Spec, run_dir: Path, out: Path, submission_dir: Path | None = None) -> Report:
    """Write every figure and ``report.md`` for a run into ``out``.

    The recipe shown (and the weighting named in the curves) is the one the run saved in its
    ``config.json``; the data comes from ``spec`` (so ``--data-dir`` still applies). Where the
    competition keeps test labels and ``submission_dir`` (default ``submissions/COMP``) holds
    files predicted from this run, they are scored too.
    """
    seeds = RunLayout(run_dir).seed_runs()
    if seeds:
        from mtlkaggle.ensemble import Member

        return make_ensemble_report(spec, [Member(s.dir, 1.0 / len(seeds)) for s in seeds], out)
    saved = read_run_config(spec, run_dir)
    if saved is not None:
        spec = spec.model_copy(update={"train": saved.train})
    report = Report(out, scores=fold_scores(spec, run_dir))
    submission_dir = submission_dir or submissions_dir(spec.name)
    report.test_scores = _test_scores(spec, run_dir, submission_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.figures.append(plot_distributions(spec, out))
    report.figures += [
        plot_curves(spec, f.dir, out) for f in RunLayout(run_dir).trained_folds() if f.name != "full"
    ]
    _, targets, probs = collect_oof(spec, run_dir)
    thresholds_path = RunLayout(run_dir).thresholds
    tuned = read_thresholds_file(spec, thresholds_path) if thresholds_path.exists() else {}
    report.figures += _oof_figures(spec, targets, probs, tuned, out)
    label_thresholds = _label_thresholds(spec, tuned, targets, probs)
    text = _markdown(spec, run_dir, report, tuned, label_thresholds, submission_dir, read_skipped(run_dir))
    write_text_atomic(out / "report.md", text)
    return report


def _oof_figures(spec: Spec, targets: dict, probs: dict, tuned: dict, out: Path) -> list[Path]:
    figures = []
    for task in spec.tasks:
        y, p = targets[task.name], probs[task.name]
        if task.kind == "multiclass":
            figures.append(plot_confusion(task, y, p, out))
        elif task.kind == "multilabel":
            th = np.array(tuned[task.name]["thresholds"]) if task.name in tuned else 0.5
            figures.append(plot_label_f1(task, y, p, th, out))
        else:
            figures.append(plot_regression(task, y, p, out))
    return figures


def make_ensemble_report(spec: Spec, members: list, out: Path) -> Report:
    """The report of an ensemble (a ``train --seeds`` run, or ``report --runs``): the pooled
    out-of-fold CV of each member and of the weighted average, each member's per-fold scores and
    curves, and the figures of the averaged out-of-fold probabilities."""
    from mtlkaggle.ensemble import ensemble_oof

    oof = ensemble_oof(spec, members)
    report = Report(out, scores=oof.table)
    out.mkdir(parents=True, exist_ok=True)
    report.figures.append(plot_distributions(spec, out))
    parts = [f"# {spec.name}: ensemble of {len(members)} run(s)", "", spec.description, ""]
    parts += ["## Out-of-fold CV: each member and the ensemble (pooled over folds)", ""]
    parts += [_markdown_table(oof.table), ""]
    for member in members:
        layout = RunLayout(member.run_dir)
        per_fold = _markdown_table(fold_scores(spec, layout.dir))
        parts += [f"## `{member.label}`: each fold's best epoch", "", per_fold, ""]
        for fold in layout.trained_folds():
            name = f"{member.label.replace('/', '_')}_{fold.dir.name}"
            report.figures.append(plot_curves(spec, fold.dir, out, name))
    tuned = {name: r.to_json() for name, r in oof.thresholds.items()}
    report.figures += _oof_figures(spec, oof.targets, oof.probs, tuned, out)
    parts += ["## Figures", ""] + [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    write_text_atomic(out / "report.md", "\n".join(parts) + "\n")
    return report


def _test_scores(spec: Spec, run_dir: Path, submission_dir: Path) -> pd.DataFrame | None:
    """The spec's metrics on the test labels, for submission files predicted from this run."""
    from mtlkaggle.evaluate import evaluate_submissions

    config = submission_dir / "config.json"
    if not has_split(spec, "test_labels") or not config.is_file():
        return None
    try:
        made_from = Path(json.loads(config.read_text(encoding="utf-8"))["run"])
    except (ValueError, KeyError, TypeError):
        return None
    if made_from.resolve() != run_dir.resolve():
        return None
    return evaluate_submissions(spec, submission_dir)


def _label_thresholds(spec: Spec, tuned: dict, targets: dict, probs: dict) -> pd.DataFrame | None:
    """One row per label of each tuned task: its threshold and its OOF F1 at 0.5 and tuned."""
    rows = []
    for task in spec.tasks:
        if task.kind != "multilabel" or task.name not in tuned:
            continue
        thresholds = np.array(tuned[task.name]["thresholds"])
        y, p = targets[task.name], probs[task.name]
        at_half = per_label_f1(y, apply_thresholds(p, 0.5))
        at_tuned = per_label_f1(y, apply_thresholds(p, thresholds))
        for j, label in enumerate(task.label_names):
            rows.append(
                {
                    "task": task.name,
                    "label": label,
                    "threshold": f"{thresholds[j]:.2f}",
                    "OOF F1 at 0.5": float(at_half[j]),
                    "OOF F1 tuned": float(at_tuned[j]),
                }
            )
    return pd.DataFrame(rows) if rows else None


def _timings(spec: Spec, run_dir: Path) -> pd.DataFrame:
    """Per fold: epochs run, mean seconds and img/s per epoch, and the fold's wall time."""
    rows = []
    for fold in RunLayout(run_dir).trained_folds():
        fix = f"train that fold again (`mtlkaggle train {spec.name} --fold {fold.name} --overwrite`)"
        m = read_table(fold.metrics, fix, ["epoch", "seconds", "img_per_s"], "metrics file")
        numeric_columns(m, fold.metrics, ["seconds", "img_per_s"], fix)
        rows.append(
            {
                "fold": fold.name,
                "epochs": len(m),
                "s/epoch": float(m["seconds"].mean()),
                "train img/s": float(m["img_per_s"].mean()),
                "wall s": float(m["seconds"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _environment(run_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per fold: device, processes and versions from its config.json; the distinct commands."""
    rows, commands = [], []
    for fold in RunLayout(run_dir).trained_folds():
        try:
            config = json.loads(fold.config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        versions = config.get("versions", {})
        rows.append(
            {
                "fold": fold.name,
                "device": config.get("device", "?"),
                "processes": config.get("world_size", 1),
                **{name: versions.get(name, "?") for name in ("mtlkaggle", "torch", "timm")},
                "weights": config.get("weights", "?"),
            }
        )
        command = _readable_command(str(config.get("command", "")))
        if command and command not in commands:
            commands.append(command)
    return pd.DataFrame(rows), commands


def _readable_command(command: str) -> str:
    """``.../mtlkaggle/__main__.py train ...`` (argv under ``python -m``) as ``mtlkaggle train ...``."""
    program, _, rest = command.partition(" ")
    if program.endswith(("mtlkaggle/__main__.py", "/mtlkaggle")) or program == "mtlkaggle":
        return f"mtlkaggle {rest}".strip()
    return command


def _markdown(
    spec: Spec,
    run_dir: Path,
    report: Report,
    tuned: dict,
    label_thresholds: pd.DataFrame | None,
    submission_dir: Path,
    skipped: dict[str, list[str]],
) -> str:
    parts = [
        f"# {spec.name}: run `{run_dir.name}`",
        "",
        spec.description,
        "",
        "## Scores at each fold's best epoch (validation)",
        "",
        _markdown_table(report.scores),
    ]
    parts += ["", "## Test scores", "", _test_section(spec, run_dir, report, submission_dir)]
    if tuned:
        rows = [{"task": name, "metric": t["metric"], **t["scores"]} for name, t in tuned.items()]
        parts += ["", "## Out-of-fold thresholds", "", _markdown_table(pd.DataFrame(rows))]
    if label_thresholds is not None:
        parts += ["", "## Tuned threshold per label", "", _markdown_table(label_thresholds)]
    parts += ["", "## Time and throughput per fold", "", _markdown_table(_timings(spec, run_dir))]
    environment, commands = _environment(run_dir)
    if len(environment):
        parts += ["", "## Environment", "", _markdown_table(environment)]
    if commands:
        parts += ["", "## Command", "", "```", *commands, "```"]
    if skipped:
        total = sum(len(v) for v in skipped.values())
        parts += ["", f"## Skipped images ({total}, unreadable, left out of training)", ""]
        parts += [f"- fold {fold}: {line}" for fold, lines in skipped.items() for line in lines]
    parts += ["", "## Configuration", "", "```json", json.dumps(spec.train.model_dump(), indent=2), "```"]
    parts += ["", "## Figures", ""]
    parts += [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    return "\n".join(parts) + "\n"


def _test_section(spec: Spec, run_dir: Path, report: Report, submission_dir: Path) -> str:
    if report.test_scores is not None:
        return (
            f"The submission files in `{submission_dir}` (predicted from this run) scored against the "
            f"test labels:\n\n{_markdown_table(report.test_scores)}"
        )
    if not has_split(spec, "test_labels"):
        return "The competition keeps no test labels: Kaggle scores the test (`mtlkaggle submissions`)."
    return (
        f"No submission files from this run in `{submission_dir}`: run `mtlkaggle predict {spec.name} "
        f"--run {run_dir.name}`, then report again to score them against the test labels."
    )

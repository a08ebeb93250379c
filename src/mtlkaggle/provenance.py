"""How every artefact was made: the one writer of the ``config.json`` files, and the versions.

- a fold's ``config.json``: the resolved spec and how the fold was started (device, processes,
  command, versions, row counts);
- a run's ``config.json``: the resolved spec of the last ``train`` call (the spec itself);
- a submission folder's ``config.json``: the spec, the run(s), folds, views and thresholds that
  made the files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mtlkaggle.io import write_json_atomic
from mtlkaggle.spec import Spec


def versions(with_onnx: bool = False) -> dict[str, str]:
    """mtlkaggle's, torch's and timm's versions (and onnx's and onnxruntime's when asked)."""
    import timm
    import torch

    import mtlkaggle

    found = {"mtlkaggle": mtlkaggle.__version__, "torch": torch.__version__, "timm": timm.__version__}
    if with_onnx:
        import onnx
        import onnxruntime

        found |= {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    return found


def write_fold_config(path: Path, spec: Spec, **facts: Any) -> None:
    """A fold's ``config.json``: the spec, ``facts`` about its start, the command and versions."""
    config = {"spec": spec.model_dump(mode="json"), **facts}
    write_json_atomic(path, config | {"command": " ".join(sys.argv), "versions": versions()})


def note_in_config(path: Path, key: str, value: str) -> None:
    """Add ``key: value`` to an existing ``config.json`` (e.g. how a full-data fit chose its epochs)."""
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        write_json_atomic(path, {**config, key: value})


def write_run_config(path: Path, spec: Spec) -> None:
    """A run's ``config.json``: the resolved spec of the last ``train`` call."""
    write_json_atomic(path, spec.model_dump(mode="json"))


def write_submission_config(path: Path, spec: Spec, **facts: Any) -> None:
    """A submission folder's ``config.json``: the spec and what made the files."""
    write_json_atomic(path, {"spec": spec.model_dump(mode="json"), **facts})

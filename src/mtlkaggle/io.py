"""Atomic file writes: a reader never sees a half-written artefact."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic. On any
    exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv_atomic(path: str | Path, frame: Any, **to_csv_kwargs: Any) -> None:
    """Write a pandas DataFrame to ``path`` atomically (``index=False`` unless given)."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **to_csv_kwargs)


@contextmanager
def run_lock(path: str | Path, hold: bool = True) -> Iterator[None]:
    """Hold ``path`` as a lock file for the block: a second process stops at once, naming the holder.

    The file records the holder's pid, host and start time. A lock left by a process that no
    longer runs on this host is taken over with a warning on stderr. ``hold=False`` (ranks other
    than 0 under torchrun) takes nothing.

    Raises:
        UserError: another live process holds the lock.
    """
    if not hold:
        yield
        return
    import socket
    import sys
    import time

    from mtlkaggle.errors import UserError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None or (holder.get("host") == me["host"] and not _alive(holder.get("pid"))):
                print(
                    f"warning: {path}: taking over a stale lock ({holder or 'unreadable'})", file=sys.stderr
                )
                path.unlink(missing_ok=True)
                continue
            raise UserError(
                f"{path.parent} is in use by pid {holder.get('pid')} on {holder.get('host')} since "
                f"{holder.get('started')}; wait for it to finish, stop it, or train under another --run"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        if _read_lock(path) == me:
            path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

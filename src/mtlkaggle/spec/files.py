"""Competition files: finding one by name, the packaged templates, loading and validating."""

from __future__ import annotations

from pathlib import Path

import tomllib
from pydantic import ValidationError

from mtlkaggle.errors import UserError
from mtlkaggle.spec.competition import Spec


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


PACKAGED_SPECS = Path(__file__).resolve().parents[1] / "competitions"  # filled by setup.py's build_py


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

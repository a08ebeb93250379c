"""Image sources: where each row's pixels come from, behind one interface.

Every consumer (the CPU DataLoader and its workers, the device path, ``check``, ``predict
--bundle``) reads a row's image through an :class:`ImageSource`:

- :class:`FileSource`: one image file per row (JPEG, PNG, ...), as found by the spec's patterns;
- :class:`ChannelSource`: several single-channel files per row stacked into one C-channel image;
- :class:`PixelSource`: pixel values held in the label file (one column per pixel, or one
  column of space-separated values), kept as read and decoded per sample;
- :class:`Hdf5Source`: encoded images (or raw pixel arrays) in one HDF5 file, keyed by id; the
  file is opened lazily, once per process, so DataLoader workers each get their own handle;
- :class:`DicomSource`: one DICOM file per row, rescaled (slope, intercept) and windowed, one
  channel per (center, width) window.

Each decodes lazily, per sample, to uint8 (H, W, C); one channel is repeated to three (RGB
backbones). A bad sample raises :class:`ImageReadError` whose one line names the container and the
row (file path; ``file.hdf5[key]``; ``file:line [column] (id ...)``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtlkaggle.data.images import ImageReadError, decode_image
from mtlkaggle.errors import UserError

EXTRAS = {"h5py": "hdf5", "pydicom": "dicom", "pyarrow": "parquet"}


def require(module: str, why: str):
    """Import an optional package, or raise a one-line UserError naming the pip install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = "h5py" if module == "h5py" else module
        raise UserError(
            f"{why} needs the package {package}, which is not installed; run: pip install {package} "
            f"(or: pip install 'mtlkaggle[{EXTRAS[module]}]')"
        ) from None


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W, 3) equal channels; any other channel count is kept."""
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


class ImageSource:
    """A split's images, one per row, decoded on demand (in whichever process asks)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, i: int) -> str:
        """Where row ``i``'s image is, as messages name it."""
        raise NotImplementedError

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        """Row ``i``'s image as uint8 (H, W, C), C >= 3 (one channel repeated to three).

        Raises:
            ImageReadError: one line naming the container and the row.
        """
        raise NotImplementedError

    def encoded(self, i: int):
        """Row ``i`` for the device path: encoded bytes (1-D uint8 tensor) or pixels (H, W, C).

        Raises:
            ImageReadError: as :meth:`read`.
        """
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.read(i)))

    def verify(self, i: int) -> str | None:
        """Decode row ``i`` in full: the one-line problem, or None when it is fine."""
        try:
            image = self.read(i)
        except ImageReadError as e:
            return str(e)
        return f"{self.name(i)}: empty image" if image.size == 0 else None

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageSource:
        """The rows at ``index`` (integer positions), as a source."""
        return _Rows(self, np.asarray(index, dtype=np.int64))


class _Rows(ImageSource):
    def __init__(self, base: ImageSource, index: np.ndarray):
        self.base, self.index = base, index

    def __len__(self) -> int:
        return len(self.index)

    def name(self, i: int) -> str:
        return self.base.name(int(self.index[i]))

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        return self.base.read(int(self.index[i]), draft_size)

    def encoded(self, i: int):
        return self.base.encoded(int(self.index[i]))

    def subset(self, index) -> ImageSource:
        return _Rows(self.base, self.index[np.asarray(index, dtype=np.int64)])


class ConcatSource(ImageSource):
    """Several sources one after the other (e.g. train rows, then val rows)."""

    def __init__(self, parts: list[ImageSource]):
        self.parts = parts
        self.starts = np.cumsum([0, *(len(p) for p in parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _at(self, i: int) -> tuple[ImageSource, int]:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[k], i - int(self.starts[k])

    def name(self, i: int) -> str:
        part, j = self._at(i)
        return part.name(j)

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        part, j = self._at(i)
        return part.read(j, draft_size)

    def encoded(self, i: int):
        part, j = self._at(i)
        return part.encoded(j)


class FileSource(ImageSource):
    """One image file per row. ``tried`` lists, per row, every path the test patterns gave."""

    def __init__(self, paths: list[Path], tried: list[tuple[Path, ...]] | None = None):
        self.paths, self.tried = paths, tried

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return str(self.paths[i])

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        try:
            return decode_image(self.paths[i], self.name(i), draft_size)
        except ImageReadError as e:
            if str(e).endswith("image not found"):
                raise self._not_found(i) from None
            raise

    def _not_found(self, i: int) -> ImageReadError:
        message = f"{self.paths[i]}: image not found"
        if self.tried and len(self.tried[i]) > 1:
            message += f" (also tried {', '.join(str(p) for p in self.tried[i][1:])})"
        return ImageReadError(message)

    def encoded(self, i: int):
        import torch

        path = self.paths[i]
        try:
            return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        except FileNotFoundError:
            raise self._not_found(i) from None
        except OSError as e:
            raise ImageReadError(f"{path}: unreadable image ({e})") from None


class ChannelSource(ImageSource):
    """Several single-channel files per row (e.g. ``_red``, ``_green``, ``_blue``, ``_yellow``)."""

    def __init__(self, paths: list[tuple[Path, ...]], channel_names: list[str]):
        self.paths, self.channel_names = paths, channel_names

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return str(self.paths[i][0])

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        planes = [decode_image(p, str(p), draft_size, gray=True) for p in self.paths[i]]
        shapes = {plane.shape for plane in planes}
        if len(shapes) > 1:
            pairs = zip(self.channel_names, (p.shape for p in planes), strict=True)
            sizes = ", ".join(f"{c} {s[1]}x{s[0]}" for c, s in pairs)
            raise ImageReadError(f"{self.paths[i][0]}: channel files differ in size ({sizes})")
        return as_rgb(np.stack(planes, axis=2))


class PixelSource(ImageSource):
    """Pixels stored in the label file: a (N, P) numeric block, or one string of P values a row.

    Values are checked when a row is read: a missing, fractional or out-of-range value names the
    row's line, column and id.
    """

    def __init__(
        self,
        values: np.ndarray,
        shape: tuple[int, ...],
        file: Path,
        lines: np.ndarray,
        ids: np.ndarray,
        column: str,
    ):
        self.values, self.shape, self.file = values, tuple(shape), file
        self.lines, self.ids, self.column = lines, ids, column

    def __len__(self) -> int:
        return len(self.values)

    def name(self, i: int) -> str:
        line = f":{int(self.lines[i])}" if self.lines[i] >= 1 else ""
        return f"{self.file}{line} [{self.column}] (id '{self.ids[i]}')"

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        size = int(np.prod(self.shape))
        row = self.values[i]
        what = f"expected {size} grayscale values 0-255"
        if isinstance(row, str):
            what += " separated by spaces"
            try:
                row = np.array(row.split(), dtype=np.float64)
            except ValueError:
                raise ImageReadError(f"{self.name(i)}: {what}") from None
        row = np.asarray(row, dtype=np.float64)
        if row.size != size or not np.isfinite(row).all() or (row != np.round(row)).any():
            raise ImageReadError(f"{self.name(i)}: {what}, found {_describe(row, size)}")
        if row.min() < 0 or row.max() > 255:
            raise ImageReadError(f"{self.name(i)}: {what}, found {row.min():g}..{row.max():g}")
        return as_rgb(row.astype(np.uint8).reshape(self.shape))


def _describe(row: np.ndarray, size: int) -> str:
    if row.size != size:
        return f"{row.size}"
    bad = int(np.flatnonzero(~np.isfinite(row) | (row != np.round(row)))[0])
    return f"'{row[bad]:g}' (not a whole number) at position {bad}"


class Hdf5Source(ImageSource):
    """Images in one HDF5 file, a dataset per key holding encoded bytes (or a uint8 pixel array)."""

    def __init__(self, file: Path, keys: list[str]):
        require("h5py", f"{file} (image_source = 'hdf5')")
        self.file, self.keys = file, keys
        self._handle, self._pid = None, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.keys)

    def name(self, i: int) -> str:
        return f"{self.file}[{self.keys[i]}]"

    def _open(self):
        import h5py

        if self._handle is None or self._pid != os.getpid():  # a forked worker opens its own
            try:
                self._handle, self._pid = h5py.File(self.file, "r"), os.getpid()
            except FileNotFoundError:
                raise ImageReadError(f"{self.file}: HDF5 file not found") from None
            except OSError as e:
                raise ImageReadError(f"{self.file}: unreadable HDF5 file ({e})") from None
        return self._handle

    def _raw(self, i: int) -> bytes | np.ndarray:
        handle = self._open()
        key = self.keys[i]
        if key not in handle:
            raise ImageReadError(f"{self.name(i)}: no such image in the HDF5 file")
        try:
            value = handle[key][()]
        except (OSError, TypeError, AttributeError) as e:
            raise ImageReadError(f"{self.name(i)}: unreadable dataset ({e})") from None
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3):
            return value  # raw pixels
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1:
            return value.tobytes()
        if isinstance(value, bytes | np.bytes_ | np.void):
            return bytes(value)
        raise ImageReadError(f"{self.name(i)}: holds {type(value).__name__}, not image bytes or uint8 pixels")

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        value = self._raw(i)
        if isinstance(value, np.ndarray):
            return as_rgb(value)
        return decode_image(io.BytesIO(value), self.name(i), draft_size)

    def encoded(self, i: int):
        import torch

        value = self._raw(i)
        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(as_rgb(value)))
        return torch.frombuffer(bytearray(value), dtype=torch.uint8)


class DicomSource(ImageSource):
    """One DICOM file per row: stored values x RescaleSlope + RescaleIntercept, then windowed.

    Each (center, width) window maps [center - width/2, center + width/2] to 0..255 as one channel;
    without windows, each image's own min..max does. MONOCHROME1 images are inverted.
    """

    def __init__(self, paths: list[Path], windows: list[tuple[float, float]]):
        require("pydicom", f"{paths[0].parent if paths else 'DICOM'} (image_source = 'dicom')")
        self.paths, self.windows = paths, windows

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return str(self.paths[i])

    def read(self, i: int, draft_size: int | None = None) -> np.ndarray:
        import pydicom

        path = self.paths[i]
        try:
            ds = pydicom.dcmread(path)
            values = ds.pixel_array.astype(np.float64)
            slope = float(getattr(ds, "RescaleSlope", 1) or 1)
            intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        except FileNotFoundError:
            raise ImageReadError(f"{path}: image not found") from None
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for one meaning: unreadable
            raise ImageReadError(f"{path}: unreadable DICOM ({type(e).__name__}: {e})") from None
        if values.ndim != 2:
            raise ImageReadError(f"{path}: DICOM pixel data of shape {values.shape}; expected one 2-D frame")
        hu = values * slope + intercept
        if self.windows:
            planes = [np.clip((hu - (c - w / 2)) / w, 0, 1) for c, w in self.windows]
        else:
            lo, hi = float(hu.min()), float(hu.max())
            planes = [(hu - lo) / (hi - lo) if hi > lo else np.zeros_like(hu)]
        image = np.rint(np.stack(planes, axis=2) * 255).astype(np.uint8)
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            image = 255 - image
        return as_rgb(image)

"""The device-side data path: workers read file bytes; decoding and augmentation run batched.

DataLoader workers hand over each image's encoded bytes (:class:`EncodedDataset`), and
:class:`DevicePipeline` turns a whole batch into model inputs on the training device:

- JPEGs are decoded with ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA, batched);
  other formats, and JPEGs the batched decoder refuses (CMYK, odd progressive files), fall back
  to PIL one image at a time; an image nothing can decode is reported like the CPU path does.
- The training recipe is that of :func:`mtlkaggle.data.loading.build_transforms`, with each
  sample's random parameters drawn from its own seed (:class:`SeededSampler`) by a vectorized
  counter-based hash: no Python loop per sample, and the result depends on (seed, epoch, index)
  only, whatever the worker count. Crop and resize are one ``torchvision.ops.roi_align`` call
  (adaptive sampling averages several points per output pixel when shrinking, so full-size
  decodes do not alias); rotation, shift and flips are one ``affine_grid``/``grid_sample`` with
  reflection; colour jitter is per-sample scales and blends plus an HSV hue turn, on the batch.

Differences from the albumentations reference, by design (the tests hold both paths to these):
crops are taken from the full-size decode rather than libjpeg's draft (same relative crop
distribution); resampling is roi_align's averaged bilinear rather than OpenCV's bilinear;
reflection repeats the edge pixel (OpenCV's BORDER_REFLECT_101 does not); colour jitter runs in
the fixed order brightness, contrast, saturation, hue (albumentations shuffles it) on floats
(OpenCV on uint8, hue in 2-degree steps). kornia would give the same operations at the cost of a
dependency; torchvision already ships all of them.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mtlkaggle.data.images import ImageReadError, decode_failure
from mtlkaggle.data.labels import LabelTable
from mtlkaggle.spec import Spec

_JPEG_MAGIC = (0xFF, 0xD8)
_ATTEMPTS = 10  # RandomResizedCrop's tries before its centre-crop fallback
_FLOAT_BUDGET = 2**28  # elements of one float buffer for roi_align (1 GiB): large decodes go in chunks
_GRAY = (0.299, 0.587, 0.114)


def resolve_augment_on(on: str, device: torch.device | str) -> str:
    """``cpu`` or ``device``: where decoding and augmentation run (``auto``: device on CUDA only)."""
    if on != "auto":
        return on
    return "device" if torch.device(device).type == "cuda" else "cpu"


class EncodedDataset:
    """A :class:`LabelTable`'s images as encoded bytes (uint8 tensors) plus targets and seeds.

    Workers only read bytes (files, HDF5); other sources (pixel columns, channel files, DICOM)
    hand over decoded pixels (H, W, C). A bad sample yields ``{"bad": ...}`` as
    :class:`mtlkaggle.data.loading.ImageDataset` does.
    """

    def __init__(self, table: LabelTable):
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One sample; ``key`` is an index, or ``(index, seed)`` to fix its augmentation."""
        i, seed = key if isinstance(key, tuple) else (key, 0)
        try:
            data = self.table.source.encoded(i)
        except ImageReadError as e:
            return {"bad": str(e), "index": i}
        path = self.table.source.name(i)
        sample = {"data": data, "path": path, "seed": seed, "index": i}
        for name, y in self.table.targets.items():
            sample[name] = torch.as_tensor(y[i])
        return sample


def collate_encoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch encoded samples: ``data`` and ``path`` stay lists, the rest is stacked; bad ones listed."""
    from torch.utils.data import default_collate

    good = [s for s in samples if "bad" not in s]
    batch: dict[str, Any] = {}
    if good:
        rest = [{k: v for k, v in s.items() if k not in ("data", "path")} for s in good]
        batch = default_collate(rest)
        batch["data"] = [s["data"] for s in good]
        batch["path"] = [s["path"] for s in good]
    batch["bad"] = [s["bad"] for s in samples if "bad" in s]
    batch["skipped"] = len(batch["bad"])
    return batch


class DevicePipeline:
    """Encoded batch -> float images (N, 3, S, S, 0-255) on ``device``, augmented when training.

    Args:
        spec: The competition (its ``[augment]`` recipe).
        img_size: Output side.
        train: Random training recipe, or the evaluation resize.
        device: Where to decode and augment.
        channels_last: Memory format of the output.
    """

    def __init__(
        self, spec: Spec, img_size: int, train: bool, device: torch.device | str, channels_last: bool = True
    ):
        self.aug, self.size, self.train = spec.augment, img_size, train
        self.device = torch.device(device)
        self.memory = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with ``image`` on the device in place of ``data``; undecodable rows move to ``bad``."""
        if "data" not in batch:
            return batch
        batch = dict(batch)  # the loader's dict is left as it was
        images, bad = decode_batch(batch.pop("data"), batch.pop("path"), self.device)
        if bad:
            keep = torch.tensor([i not in bad for i in range(len(images))])
            batch = {k: v[keep] if _per_row(v, len(keep)) else v for k, v in batch.items()}
            batch["bad"] = batch["bad"] + list(bad.values())
            batch["skipped"] = len(batch["bad"])
            images = [im for i, im in enumerate(images) if i not in bad]
            if not images:
                return {k: v for k, v in batch.items() if k in ("bad", "skipped")}
        out = self.augment(images, batch["seed"]) if self.train else self.resize(images)
        batch["image"] = out.contiguous(memory_format=self.memory)
        return batch

    def resize(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Evaluation preprocessing: squash to S x S, or longest side to S and pad with black."""
        hw = torch.tensor([im.shape[-2:] for im in images], dtype=torch.float64)
        h, w = hw[:, 0], hw[:, 1]
        if self.aug.eval_resize == "squash":
            return _crop_resize(images, torch.stack([0 * w, 0 * h, w, h], 1), self.size)
        # LongestMaxSize then PadIfNeeded: integer sizes and offsets, as albumentations rounds them
        side = torch.maximum(h, w)
        nh = torch.round(h * self.size / side).clamp(min=1)
        nw = torch.round(w * self.size / side).clamp(min=1)
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        y0, x0 = -top * h / nh, -left * w / nw
        boxes = torch.stack([x0, y0, x0 + self.size * w / nw, y0 + self.size * h / nh], 1)
        out = _crop_resize(images, boxes, self.size)
        top, left, nh, nw = (v.to(self.device) for v in (top, left, nh, nw))
        grid = torch.arange(self.size, device=self.device, dtype=torch.float64)
        rows = (grid[None] >= top[:, None]) & (grid[None] < (top + nh)[:, None])
        cols = (grid[None] >= left[:, None]) & (grid[None] < (left + nw)[:, None])
        return out * (rows[:, :, None] & cols[:, None, :])[:, None].to(out.dtype)

    def augment(self, images: list[torch.Tensor], seeds: torch.Tensor) -> torch.Tensor:
        """The training recipe, each sample's parameters drawn from its seed."""
        u = sample_uniforms(seeds.numpy(), 2 * _ATTEMPTS + 13)
        hw = np.array([im.shape[-2:] for im in images], dtype=np.float64)
        boxes = crop_boxes(u[:, : 2 * _ATTEMPTS + 2], hw[:, 0], hw[:, 1], self.aug.crop_scale)
        x = _crop_resize(images, torch.from_numpy(boxes), self.size)
        x = self._geometry(x, u[:, 2 * _ATTEMPTS + 2 : 2 * _ATTEMPTS + 8])
        return self._colour(x, u[:, 2 * _ATTEMPTS + 8 :]).clamp_(0, 255)

    def _geometry(self, x: torch.Tensor, u: np.ndarray) -> torch.Tensor:
        """Affine (p=0.7: rotation about the centre, shift per axis), then flips: one resampling."""
        aug = self.aug
        on = (u[:, 0] < 0.7) & bool(aug.rotate or aug.shift)
        angle = np.where(on, (2 * u[:, 1] - 1) * math.radians(aug.rotate), 0.0)
        shift = np.where(on[:, None], (2 * u[:, 2:4] - 1) * aug.shift * 2, 0.0)  # normalized coords: x2
        fx = np.where(u[:, 4] < aug.hflip, -1.0, 1.0)
        fy = np.where(u[:, 5] < aug.vflip, -1.0, 1.0)
        if not (on.any() or (fx < 0).any() or (fy < 0).any()):
            return x
        cos, sin = np.cos(angle), np.sin(angle)
        # output -> input: flip, then undo the shift and the rotation
        theta = np.zeros((len(u), 2, 3))
        theta[:, 0, 0], theta[:, 0, 1] = cos * fx, sin * fy
        theta[:, 1, 0], theta[:, 1, 1] = -sin * fx, cos * fy
        theta[:, 0, 2] = -(cos * shift[:, 0] + sin * shift[:, 1])
        theta[:, 1, 2] = -(-sin * shift[:, 0] + cos * shift[:, 1])
        theta_t = torch.from_numpy(theta).to(self.device, x.dtype)
        grid = F.affine_grid(theta_t, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _colour(self, x: torch.Tensor, u: np.ndarray) -> torch.Tensor:
        """ColorJitter (p=0.8): brightness, contrast, saturation, hue, per sample, all at once."""
        c = self.aug.color_jitter
        if not c:
            return x
        on = u[:, 0] < 0.8
        b, k, s = (np.where(on, 1 + (2 * u[:, j] - 1) * c, 1.0) for j in (1, 2, 3))
        hue = np.where(on, (2 * u[:, 4] - 1) * (c / 4), 0.0)  # a fraction of the colour circle
        gray = torch.tensor(_GRAY, device=self.device, dtype=x.dtype)

        def per_sample(v: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(v).to(self.device, x.dtype)[:, None, None, None]

        x = (x * per_sample(b)).clamp_(0, 255)
        mean = torch.einsum("nchw,c->n", x, gray) / (x.shape[-1] * x.shape[-2])
        x = (x * per_sample(k) + mean[:, None, None, None] * (1 - per_sample(k))).clamp_(0, 255)
        luma = torch.einsum("nchw,c->nhw", x, gray)[:, None]
        x = (x * per_sample(s) + luma * (1 - per_sample(s))).clamp_(0, 255)
        return _shift_hue(x, torch.from_numpy(hue).to(self.device, x.dtype))


def _per_row(value: Any, n: int) -> bool:
    return torch.is_tensor(value) and value.ndim > 0 and len(value) == n


def decode_batch(
    data: list[torch.Tensor], paths: list[str], device: torch.device
) -> tuple[list[torch.Tensor], dict[int, str]]:
    """Decode a batch to RGB uint8 (3, H, W) tensors on ``device``.

    JPEGs go through one batched ``decode_jpeg`` call; anything it refuses, and every other
    format, is decoded by PIL alone. Returns the images (a 1x1 placeholder where decoding
    failed) and ``{position: "PATH: what is wrong"}`` for those.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    images: list[torch.Tensor | None] = [None] * len(data)
    jpeg = [i for i, d in enumerate(data) if d.ndim == 1 and tuple(d[:2].tolist()) == _JPEG_MAGIC]
    if jpeg:
        try:
            decoded = decode_jpeg([data[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
            for i, im in zip(jpeg, decoded, strict=True):
                images[i] = im
        except (RuntimeError, TypeError):
            # one odd file fails the whole call (and torchvision < 0.19 takes no list): one by one
            for i in jpeg:
                images[i] = _decode_one(data[i], device)
    bad: dict[int, str] = {}
    for i, im in enumerate(images):
        if im is not None:
            continue
        if data[i].ndim == 3:  # decoded pixels (H, W, C)
            images[i] = data[i].permute(2, 0, 1).to(device, non_blocking=True)
            continue
        try:
            images[i] = _decode_pil(data[i], paths[i]).to(device, non_blocking=True)
        except ValueError as e:
            bad[i] = str(e)
            images[i] = torch.zeros((3, 1, 1), dtype=torch.uint8, device=device)
    return images, bad  # type: ignore[return-value]


def _decode_one(data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None  # PIL tries next


def _decode_pil(data: torch.Tensor, path: str) -> torch.Tensor:
    """PIL's decode of one encoded image, converted to RGB as :func:`load_image` does."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            array = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: unreadable image ({decode_failure(e)})") from None
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def sample_uniforms(seeds: np.ndarray, k: int) -> np.ndarray:
    """``k`` uniform [0, 1) numbers per seed (N, k), by splitmix64 of (seed, column): no loop per sample."""
    with np.errstate(over="ignore"):
        z = seeds.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
        z = z + (np.arange(1, k + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03))[None]
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def crop_boxes(
    u: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (0.8, 1.25),
) -> np.ndarray:
    """RandomResizedCrop's boxes (N, 4: x0, y0, x1, y1), its 10 tries and centre fallback, vectorized.

    ``u`` holds 2 * 10 uniforms for the tries (area, log ratio) and 2 for the position.
    """
    area = (scale[0] + (scale[1] - scale[0]) * u[:, :_ATTEMPTS]) * (h * w)[:, None]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, _ATTEMPTS : 2 * _ATTEMPTS])
    cw, ch = np.round(np.sqrt(area * aspect)), np.round(np.sqrt(area / aspect))
    fits = (cw > 0) & (ch > 0) & (cw <= w[:, None]) & (ch <= h[:, None])
    first = fits.argmax(1)
    rows = np.arange(len(u))
    cw, ch = cw[rows, first], ch[rows, first]
    y0 = np.floor(u[:, -2] * (h - ch + 1))
    x0 = np.floor(u[:, -1] * (w - cw + 1))
    # no try fits: the largest centred crop within the ratio range
    miss = ~fits.any(1)
    in_ratio = w / h
    fw = np.where(in_ratio > ratio[1], np.round(h * ratio[1]), w)
    fh = np.where(in_ratio < ratio[0], np.round(w / ratio[0]), h)
    cw, ch = np.where(miss, fw, cw), np.where(miss, fh, ch)
    x0 = np.where(miss, (w - cw) // 2, x0)
    y0 = np.where(miss, (h - ch) // 2, y0)
    return np.stack([x0, y0, x0 + cw, y0 + ch], 1)


def _crop_resize(images: list[torch.Tensor], boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box resized to size x size, as float: one roi_align per chunk of images."""
    from torchvision.ops import roi_align

    device = images[0].device
    boxes = boxes.to(device, torch.float32)
    out = []
    for start, stop in _chunks(images):
        buffer = _pad_stack(images[start:stop]).float()
        index = torch.arange(stop - start, device=device, dtype=torch.float32)[:, None]
        rois = torch.cat([index, boxes[start:stop]], 1)
        out.append(roi_align(buffer, rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True))
    return torch.cat(out) if len(out) > 1 else out[0]


def _chunks(images: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Runs of images whose padded float buffer stays under the budget."""
    spans, start, tallest, widest = [], 0, 0, 0
    for i, im in enumerate(images):
        h, w = max(tallest, im.shape[1] + 1), max(widest, im.shape[2] + 1)
        if i > start and (i - start + 1) * 3 * h * w > _FLOAT_BUDGET:
            spans.append((start, i))
            start, h, w = i, im.shape[1] + 1, im.shape[2] + 1
        tallest, widest = h, w
    spans.append((start, len(images)))
    return spans


def _pad_stack(images: list[torch.Tensor]) -> torch.Tensor:
    """Stack images of different sizes; each is followed by a copy of its last row and column.

    roi_align interpolates up to half a pixel past the box, and the copy (not the zeros of the
    padding) is what it should meet there.
    """
    if all(im.shape == images[0].shape for im in images):
        stacked = torch.stack(images)
        stacked = torch.cat([stacked, stacked[..., -1:, :]], 2)
        return torch.cat([stacked, stacked[..., -1:]], 3)
    h = max(im.shape[1] for im in images) + 1
    w = max(im.shape[2] for im in images) + 1
    buffer = images[0].new_zeros((len(images), images[0].shape[0], h, w))
    for i, im in enumerate(images):  # copies only: the arithmetic is batched
        ih, iw = im.shape[1:]
        buffer[i, :, :ih, :iw] = im
        buffer[i, :, ih, :iw] = im[:, -1]
        buffer[i, :, : ih + 1, iw] = buffer[i, :, : ih + 1, iw - 1]
    return buffer


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Turn each image's hue by ``shift`` (N,) of the circle in HSV, keeping value and chroma."""
    top, bottom = x.amax(1), x.amin(1)
    chroma = top - bottom
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    r, g, b = ((top - c) / safe for c in x.unbind(1))
    red, green = top == x[:, 0], (top == x[:, 1]) & (top != x[:, 0])
    blue = ~(red | green)
    hue = (red * (b - g) + green * (2 + r - b) + blue * (4 + g - r)) / 6
    hue = torch.remainder(hue + shift[:, None, None], 1.0) * 6
    sector = torch.floor(hue)
    f = hue - sector
    rising, falling = bottom + chroma * f, top - chroma * f
    # per sector (0..5), which of (top, rising, falling, bottom) each channel takes
    table = torch.tensor(
        [[0, 2, 3, 3, 1, 0], [1, 0, 0, 2, 3, 3], [3, 3, 1, 0, 0, 2]], device=x.device
    )  # (3 channels, 6 sectors)
    levels = torch.stack([top, rising, falling, bottom], 1)  # (N, 4, H, W)
    pick = table[:, sector.long().clamp(0, 5)]  # (3, N, H, W)
    return torch.gather(levels, 1, pick.permute(1, 0, 2, 3))

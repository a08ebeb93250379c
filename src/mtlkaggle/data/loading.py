"""From a LabelTable to batches: transforms, the Dataset, the seeded sampler and the DataLoader."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mtlkaggle.data.images import ImageReadError
from mtlkaggle.data.labels import LabelTable
from mtlkaggle.spec import Spec


def build_transforms(spec: Spec, img_size: int, train: bool) -> Any:
    """The albumentations pipeline for training or evaluation (uint8 in, uint8 out).

    Normalization happens on the device (see ``model.MultiTaskNet.normalize``) so that workers
    hand over compact uint8 tensors.
    """
    import albumentations as A
    import cv2

    # single-threaded OpenCV in this process too: a thread pool here, once started, deadlocks the
    # DataLoader workers forked from it (they inherit the pool's locks but not its threads)
    cv2.setNumThreads(1)
    aug = spec.augment
    size = (img_size, img_size)
    if not train:
        if aug.eval_resize == "squash":
            return A.Compose([A.Resize(*size)])
        return A.Compose(
            [
                A.LongestMaxSize(max_size=img_size),
                A.PadIfNeeded(img_size, img_size, border_mode=cv2.BORDER_CONSTANT, fill=0),
            ]
        )
    steps = [A.RandomResizedCrop(size=size, scale=aug.crop_scale, ratio=(0.8, 1.25))]
    if aug.rotate or aug.shift:
        steps.append(
            A.Affine(
                rotate=(-aug.rotate, aug.rotate),
                translate_percent=(-aug.shift, aug.shift),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.7,
            )
        )
    if aug.hflip:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip:
        steps.append(A.VerticalFlip(p=aug.vflip))
    if aug.color_jitter:
        c = aug.color_jitter
        steps.append(A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 4, p=0.8))
    return A.Compose(steps)


class ImageDataset:
    """Images of a :class:`LabelTable`, transformed, as uint8 CHW tensors plus targets.

    Augmentation randomness comes from the seed each key carries (see :class:`SeededSampler`),
    so a sample's augmentation depends on (run seed, epoch, index) only: not on worker count,
    batch order, the number of processes or whether the run was resumed.

    Images come from the table's :class:`~mtlkaggle.data.sources.ImageSource` (files, pixel
    columns, HDF5, channel files, DICOM), decoded here, in the worker. An unreadable image never
    raises here: it yields ``{"bad": "WHERE: what is wrong"}``, and
    :func:`collate` lists it under the batch's ``bad`` key, so the process that consumes batches
    reports it (or skips it) the same way whether it was read in a worker or not.
    """

    def __init__(self, table: LabelTable, transform: Any, img_size: int):
        self.table = table
        self.transform = transform
        self.draft_size = img_size

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One sample; ``key`` is an index, or ``(index, seed)`` to fix its augmentation."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        try:
            image = self.table.source.read(i, self.draft_size)
        except ImageReadError as e:
            return {"bad": str(e), "index": i}
        image = self.transform(image=image)["image"]
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "index": i,
        }
        for name, y in self.table.targets.items():
            sample[name] = torch.as_tensor(y[i])
        return sample


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good samples into a batch; list the unreadable ones under ``bad``.

    A batch whose images were all unreadable has no ``image`` key.
    """
    from torch.utils.data import default_collate

    good = [s for s in samples if "bad" not in s]
    batch = default_collate(good) if good else {}
    batch["bad"] = [s["bad"] for s in samples if "bad" in s]
    batch["skipped"] = len(batch["bad"])
    return batch


class SeededSampler(Sampler):
    """Yields ``(index, seed)``: an epoch's order and a per-sample augmentation seed.

    Both derive from (seed, epoch) alone, like ``DistributedSampler`` with ``set_epoch``. With
    ``world_size > 1`` each rank takes every ``world_size``-th position of the one global order:
    for training the order is padded by wrapping around so every rank gets as many samples (DDP
    needs equal batch counts); for evaluation (``pad=False``) nothing is repeated, so gathered
    outputs hold each row exactly once. A sample's seed depends on its index, not on its rank.
    """

    def __init__(
        self, n: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1, pad: bool = True
    ):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order and seeds on the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return -(-self.n // self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        seeds = rng.integers(0, 2**31 - 1, size=self.n)
        if self.pad and self.world_size > 1:
            total = len(self) * self.world_size
            order = np.resize(order, total)  # wraps around: the first rows are seen twice
        mine = order[self.rank :: self.world_size]
        return iter((int(i), int(seeds[i])) for i in mine)


@dataclass(frozen=True)
class LoaderConfig:
    """How one process loads one split."""

    img_size: int
    batch_size: int  # per process
    num_workers: int | None  # None: default_workers()
    seed: int
    train: bool
    pin_memory: bool = False
    rank: int = 0
    world_size: int = 1
    on_device: bool = False  # workers read bytes only; data.device.DevicePipeline does the rest


def make_loader(spec: Spec, table: LabelTable, config: LoaderConfig) -> DataLoader:
    """The DataLoader of one split, for training (augmented, shuffled, padded) or evaluation.

    Worker processes get one thread each and a base seed from a generator of their own, so
    starting workers never draws from the global torch RNG (dropout's): a resumed run sees the
    same dropout masks as an uninterrupted one, whatever the worker count. With
    ``config.on_device`` the batches hold encoded bytes (see :mod:`mtlkaggle.data.device`).
    """
    if config.on_device:
        from mtlkaggle.data.device import EncodedDataset, collate_encoded

        dataset, collate_fn, init = EncodedDataset(table), collate_encoded, init_reader
    else:
        transform = build_transforms(spec, config.img_size, config.train)
        dataset, collate_fn, init = ImageDataset(table, transform, config.img_size), collate, init_worker
    sampler = SeededSampler(
        len(table), config.seed, config.train, config.rank, config.world_size, pad=config.train
    )
    workers = default_workers() if config.num_workers is None else config.num_workers
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=config.pin_memory,
        drop_last=config.train and len(sampler) > config.batch_size,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=init if workers > 0 else None,
        generator=torch.Generator().manual_seed(config.seed),
    )


def init_worker(_: int) -> None:
    """One thread per worker: OpenCV's own pool in every worker would oversubscribe the CPU."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def init_reader(_: int) -> None:
    """One thread per worker that only reads files (the device path): OpenCV is left alone, since
    setting its pool in a process forked from one that used it can hang."""
    torch.set_num_threads(1)


def default_workers() -> int:
    """The usable CPUs minus one (for the main process), at least 0 and at most 16."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(0, min(16, cpus - 1))

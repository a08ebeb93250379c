"""Tiny data sets in each image container, written by the container's own writer (PIL, pandas and
pyarrow, h5py, pydicom), each with one label file and a competition TOML that reads it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

TASK = """
[[tasks]]
name = "label"
kind = "multiclass"
column = "label"
num_classes = 3
metrics = ["accuracy"]
"""
NO_JITTER = "\n[augment]\ncolor_jitter = 0\n"


def toml(name: str, data: str, extra: str = "") -> str:
    """A competition file: ``data`` is the body of its [data] section."""
    submission = '\n[[submissions]]\nfile = "submission.csv"\ncolumns = { label = "label" }\n'
    return f'name = "{name}"\ndata_dir = "data/{name}"\n\n[data]\n{data}\n{TASK}{extra}{submission}'


def rgb(rng: np.random.Generator, size: int = 20) -> np.ndarray:
    """A random RGB image with a flat block, uint8 (size, size, 3)."""
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    image[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_digits(root: Path, n: int = 12, n_test: int = 5, parquet: bool = False, seed: int = 0) -> dict:
    """Kaggle Digit Recognizer: train ``label,pixel0..pixel783`` (28x28), test ``pixel0..`` only."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    columns = [f"pixel{k}" for k in range(28 * 28)]
    train = pd.DataFrame(rng.integers(0, 256, (n, 28 * 28)), columns=columns)
    train.insert(0, "label", np.arange(n) % 3)
    test = pd.DataFrame(rng.integers(0, 256, (n_test, 28 * 28)), columns=columns)
    suffix = "parquet" if parquet else "csv"
    for name, frame in (("train", train), ("test", test)):
        if parquet:
            frame.to_parquet(root / f"{name}.parquet", index=False)
        else:
            frame.to_csv(root / f"{name}.csv", index=False)
    return {"train": train, "test": test, "suffix": suffix}


DIGITS = """train = "train.{suffix}"
test = "test.{suffix}"
id_column = "ImageId"
id_from_row = true
image_source = "pixels"
pixels_prefix = "pixel"
pixels_shape = [28, 28]"""


def write_isic(root: Path, n: int = 10, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """ISIC 2024: ``train-metadata.csv`` (isic_id, target) and ``train-image.hdf5`` (a dataset per
    isic_id holding the JPEG bytes); the same for test."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    import h5py

    images = {}
    for split, count, offset in (("train", n, 0), ("test", n_test, 1000)):
        ids = [f"ISIC_{offset + k:07d}" for k in range(count)]
        frame = pd.DataFrame({"isic_id": ids})
        if split == "train":
            frame["label"] = np.arange(count) % 3
        frame.to_csv(root / f"{split}-metadata.csv", index=False)
        with h5py.File(root / f"{split}-image.hdf5", "w") as f:
            for key in ids:
                image = rgb(rng)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=95)
                f.create_dataset(key, data=np.array(buffer.getvalue()))  # |S<n>, as ISIC ships
                images[key] = np.asarray(Image.open(buffer).convert("RGB"))
    return images


ISIC = """train = "train-metadata.csv"
test = "test-metadata.csv"
id_column = "isic_id"
image_source = "hdf5"
hdf5_file = "train-image.hdf5"
test_hdf5_file = "test-image.hdf5\""""


CHANNELS = ("red", "green", "blue", "yellow")


def write_hpa(root: Path, n: int = 9, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """HPA single-cell: ``train.csv`` (ID, label) and ``train/{ID}_{red,green,blue,yellow}.png``
    grayscale files; test ids in ``sample_submission.csv``, images in ``test/``."""
    rng = np.random.default_rng(seed)
    stacks = {}
    for split, count in (("train", n), ("test", n_test)):
        ids = [f"{split[:2]}-{k:04x}-abcd" for k in range(count)]
        for image_id in ids:
            planes = rng.integers(0, 256, (16, 18, 4), dtype=np.uint8)
            for c, channel in enumerate(CHANNELS):
                path = root / split / f"{image_id}_{channel}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(planes[..., c]).save(path)
            stacks[image_id] = planes
        frame = pd.DataFrame({"ID": ids})
        if split == "train":
            frame["label"] = np.arange(count) % 3
        frame.to_csv(root / ("train.csv" if split == "train" else "sample_submission.csv"), index=False)
    return stacks


HPA = """train = "train.csv"
test = "sample_submission.csv"
id_column = "ID"
image_source = "channels"
channel_names = ["red", "green", "blue", "yellow"]
image_pattern = "train/{ID}_{channel}.png"
test_image_pattern = ["test/{ID}_{channel}.png"]"""


def write_dicom(path: Path, stored: np.ndarray, slope: float = 1.0, intercept: float = -1024.0) -> None:
    """One CT slice as pydicom writes it: signed 16-bit stored values, rescale slope/intercept."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = stored.astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_rsna(root: Path, n: int = 9, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """RSNA 2019 style: ``stage_2_train/ID_xxx.dcm`` slices, labels by image id in ``train.csv``."""
    rng = np.random.default_rng(seed)
    stored = {}
    for split, count in (("train", n), ("test", n_test)):
        ids = [f"ID_{split[:2]}{k:07x}" for k in range(count)]
        for image_id in ids:
            values = rng.integers(0, 2500, (16, 16)).astype(np.int16)  # HU -1024..1475
            write_dicom(root / f"stage_2_{split}" / f"{image_id}.dcm", values)
            stored[image_id] = values
        frame = pd.DataFrame({"ID": ids})
        if split == "train":
            frame["label"] = np.arange(count) % 3
        frame.to_csv(root / f"{split}.csv", index=False)
    return stored


RSNA = """train = "train.csv"
test = "test.csv"
id_column = "ID"
image_source = "dicom"
image_pattern = "stage_2_train/{ID}.dcm"
test_image_pattern = ["stage_2_test/{ID}.dcm"]
dicom_windows = [[40, 80], [80, 200], [600, 2800]]"""


def window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """The CT window as radiology defines it: [c - w/2, c + w/2] -> 0..255, clipped."""
    lo = center - width / 2
    return np.rint(np.clip((hu - lo) / width, 0.0, 1.0) * 255).astype(np.uint8)

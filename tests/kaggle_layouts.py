"""Tiny copies of nine Kaggle image competitions, laid out as `kaggle competitions download -c SLUG`
plus unzip leaves them under ``data/SLUG/``.

Each writer follows the competition's PUBLISHED description (its Data and Evaluation pages and the
sample submission shipped with it; the page read is cited above each writer; "MLE-bench's
SLUG/description.md" is the copy of the Kaggle pages kept at
https://github.com/openai/mle-bench/tree/main/mlebench/competitions), not mtlkaggle's code: file names,
folders, columns, id formats and label encodings as published; images written by the
real writers (PIL JPEG/PNG, pydicom, h5py, pandas). Sizes are tiny (32 px, 16-24 train rows, 6
test rows) so a whole pipeline runs in seconds on a CPU.

``LAYOUTS[slug]`` gives the writer and what a test needs to hold a submission against the sample.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


@dataclass(frozen=True)
class Written:
    """What a writer laid out: the data folder, the sample submission, and the test ids in order."""

    data_dir: Path
    sample_submission: Path
    test_ids: list[str]
    classes: dict[str, list[str]] = field(default_factory=dict)  # submission column -> allowed labels


def _pixels(rng: np.random.Generator, size: int, channels: int = 3) -> np.ndarray:
    """A noisy image with a bright block, so images differ and a model has something to see."""
    shape = (size, size, channels) if channels > 1 else (size, size)
    img = rng.integers(0, 120, shape, dtype=np.uint8)
    a, b = sorted(rng.integers(0, size, 2))
    img[a : b + 1, a : b + 1] = rng.integers(130, 256, dtype=np.uint8)
    return img


def _save(path: Path, pixels: np.ndarray, **params: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **params)


def _jpeg_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _hex(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), n))


def _csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


# --- digit-recognizer ---------------------------------------------------------------------------
# https://www.kaggle.com/c/digit-recognizer/data (as quoted at http://www.kaggle.com/c/digit-recognizer/data
# and https://github.com/nikinbaidar/CNN-Digit-Recognizer): train.csv has 785 columns, "label" then
# pixel0..pixel783 (28x28 grey, row-major, 0-255); test.csv the same without "label"; the submission
# is "ImageId,Label" with ImageId counting test.csv's rows from 1. Metric: categorization accuracy.
def write_digit_recognizer(data: Path, n_train: int = 20, n_test: int = 6, seed: int = 0) -> Written:
    """train.csv, test.csv (pixel columns, no id), sample_submission.csv (ImageId 1..N, Label)."""
    rng = np.random.default_rng(seed)
    pixel_cols = [f"pixel{i}" for i in range(784)]
    train = pd.DataFrame([_pixels(rng, 28, 1).ravel() for _ in range(n_train)], columns=pixel_cols)
    train.insert(0, "label", [i % 10 for i in range(n_train)])
    test = pd.DataFrame([_pixels(rng, 28, 1).ravel() for _ in range(n_test)], columns=pixel_cols)
    _csv(train, data / "train.csv")
    _csv(test, data / "test.csv")
    ids = [str(i) for i in range(1, n_test + 1)]
    _csv(pd.DataFrame({"ImageId": range(1, n_test + 1), "Label": 0}), data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", ids, {"Label": [str(d) for d in range(10)]})


# --- cassava-leaf-disease-classification --------------------------------------------------------
# https://www.kaggle.com/c/cassava-leaf-disease-classification/data and /overview/evaluation, as copied in
# MLE-bench's cassava-leaf-disease-classification/description.md: train.csv
# (image_id = the file name with ".jpg", label = the disease code 0-4), train_images/, test_images/
# (no test.csv: the sample submission lists the test images), label_num_to_disease_map.json,
# [train/test]_tfrecords (the same images again; not needed), sample_submission.csv "image_id,label"
# ("2216849948.jpg,4"). Metric: categorization accuracy.
CASSAVA_DISEASES = {
    "0": "Cassava Bacterial Blight (CBB)",
    "1": "Cassava Brown Streak Disease (CBSD)",
    "2": "Cassava Green Mottle (CGM)",
    "3": "Cassava Mosaic Disease (CMD)",
    "4": "Healthy",
}


def write_cassava(data: Path, n_train: int = 20, n_test: int = 6, seed: int = 1) -> Written:
    """train.csv, train_images/*.jpg, test_images/*.jpg, the disease map, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    names = [f"{rng.integers(10**8, 10**10)}.jpg" for _ in range(n_train + n_test)]
    for i, name in enumerate(names):
        folder = "train_images" if i < n_train else "test_images"
        _save(data / folder / name, _pixels(rng, 32), quality=90)
    _csv(
        pd.DataFrame({"image_id": names[:n_train], "label": [i % 5 for i in range(n_train)]}),
        data / "train.csv",
    )
    (data / "label_num_to_disease_map.json").write_text(json.dumps(CASSAVA_DISEASES))
    test = names[n_train:]
    _csv(pd.DataFrame({"image_id": test, "label": 4}), data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", test, {"label": list(CASSAVA_DISEASES)})


# --- aptos2019-blindness-detection --------------------------------------------------------------
# https://www.kaggle.com/c/aptos2019-blindness-detection/data, as copied in
# MLE-bench's aptos2019-blindness-detection/description.md:
# train.csv (id_code, diagnosis 0-4), test.csv (id_code), train_images/{id_code}.png,
# test_images/{id_code}.png, sample_submission.csv "id_code,diagnosis" ("0005cfc8afb6,0").
# Metric: quadratic weighted kappa.
def write_aptos(data: Path, n_train: int = 20, n_test: int = 6, seed: int = 2) -> Written:
    """train.csv, test.csv, {train,test}_images/{id_code}.png, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    ids = [_hex(rng, 12) for _ in range(n_train + n_test)]
    for i, id_code in enumerate(ids):
        folder = "train_images" if i < n_train else "test_images"
        _save(data / folder / f"{id_code}.png", _pixels(rng, 32))
    _csv(
        pd.DataFrame({"id_code": ids[:n_train], "diagnosis": [i % 5 for i in range(n_train)]}),
        data / "train.csv",
    )
    _csv(pd.DataFrame({"id_code": ids[n_train:]}), data / "test.csv")
    _csv(pd.DataFrame({"id_code": ids[n_train:], "diagnosis": 0}), data / "sample_submission.csv")
    return Written(
        data, data / "sample_submission.csv", ids[n_train:], {"diagnosis": [str(k) for k in range(5)]}
    )


# --- plant-pathology-2021-fgvc8 -----------------------------------------------------------------
# https://www.kaggle.com/c/plant-pathology-2021-fgvc8/data, as copied in
# MLE-bench's plant-pathology-2021-fgvc8/description.md
# (the six classes as listed in https://github.com/sajedjalil/Data-Science-Pipeline-Detector's "Plant
# Pathology 2021 FGVC8 - training dataset review"): train.csv "image,labels", image = the file name
# with ".jpg", labels = the diseases' names separated by one space ("scab frog_eye_leaf_spot");
# train_images/, test_images/ (no test.csv), sample_submission.csv "image,labels"
# ("85f8cb619c66b863.jpg,healthy").
# Metric: Kaggle's Mean F1-Score (F1 per image, averaged).
PLANT_CLASSES = ["complex", "frog_eye_leaf_spot", "healthy", "powdery_mildew", "rust", "scab"]
_PLANT_LABELS = [
    "healthy",
    "scab",
    "frog_eye_leaf_spot",
    "rust",
    "complex",
    "powdery_mildew",
    "scab frog_eye_leaf_spot",
    "frog_eye_leaf_spot complex",
    "rust frog_eye_leaf_spot",
    "scab frog_eye_leaf_spot complex",
    "powdery_mildew complex",
    "rust complex",
]


def write_plant_pathology(data: Path, n_train: int = 24, n_test: int = 6, seed: int = 3) -> Written:
    """train.csv (names joined by spaces), {train,test}_images/*.jpg, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    names = [f"{_hex(rng, 16)}.jpg" for _ in range(n_train + n_test)]
    for i, name in enumerate(names):
        _save(data / ("train_images" if i < n_train else "test_images") / name, _pixels(rng, 32), quality=90)
    labels = [_PLANT_LABELS[i % len(_PLANT_LABELS)] for i in range(n_train)]
    _csv(pd.DataFrame({"image": names[:n_train], "labels": labels}), data / "train.csv")
    _csv(pd.DataFrame({"image": names[n_train:], "labels": "healthy"}), data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", names[n_train:], {"labels": PLANT_CLASSES})


# --- ranzcr-clip-catheter-line-classification ---------------------------------------------------
# https://www.kaggle.com/c/ranzcr-clip-catheter-line-classification/data, as copied in
# MLE-bench's ranzcr-clip-catheter-line-classification/description.md: train.csv
# "StudyInstanceUID", eleven 0/1 columns named with spaces and hyphens, "PatientID";
# train/{StudyInstanceUID}.jpg (grey chest x-rays; the UID is dotted digits), test/ likewise,
# train_annotations.csv (line coordinates; not needed), sample_submission.csv: StudyInstanceUID and
# the eleven columns (0 each), one probability each. Metric: mean column-wise ROC AUC. Patients have several
# studies, so folds must keep a patient together.
RANZCR_COLUMNS = [
    "ETT - Abnormal",
    "ETT - Borderline",
    "ETT - Normal",
    "NGT - Abnormal",
    "NGT - Borderline",
    "NGT - Incompletely Imaged",
    "NGT - Normal",
    "CVC - Abnormal",
    "CVC - Borderline",
    "CVC - Normal",
    "Swan Ganz Catheter Present",
]


def write_ranzcr(data: Path, n_train: int = 24, n_test: int = 6, seed: int = 4) -> Written:
    """train.csv (11 label columns + PatientID), {train,test}/{UID}.jpg, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    uids = [
        f"1.2.826.0.1.3680043.8.498.{rng.integers(10**17, 10**18)}{i:02d}" for i in range(n_train + n_test)
    ]
    for i, uid in enumerate(uids):
        _save(data / ("train" if i < n_train else "test") / f"{uid}.jpg", _pixels(rng, 32, 1), quality=90)
    rows = np.zeros((n_train, len(RANZCR_COLUMNS)), dtype=int)
    for i in range(n_train):  # one ETT, NGT and CVC state per study, Swan Ganz now and then
        rows[i, i % 3] = 1
        rows[i, 3 + i % 4] = 1
        rows[i, 7 + (i // 2) % 3] = 1
        rows[i, 10] = int(i % 4 == 1)
    train = pd.DataFrame(rows, columns=RANZCR_COLUMNS)
    train.insert(0, "StudyInstanceUID", uids[:n_train])
    train["PatientID"] = [
        f"{_hex(np.random.default_rng(i // 3), 9)}" for i in range(n_train)
    ]  # 3 studies a patient
    _csv(train, data / "train.csv")
    annotations = train.loc[train["ETT - Normal"] == 1, ["StudyInstanceUID"]].assign(
        label="ETT - Normal", data="[[1487, 1279], [1477, 1168], [1499, 1085]]"
    )
    _csv(annotations, data / "train_annotations.csv")
    sample = pd.DataFrame(0, index=range(n_test), columns=RANZCR_COLUMNS)
    sample.insert(0, "StudyInstanceUID", uids[n_train:])
    _csv(sample, data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", uids[n_train:])


# --- imet-2020-fgvc7 ----------------------------------------------------------------------------
# https://www.kaggle.com/c/imet-2020-fgvc7/data and /overview/evaluation, as copied in
# MLE-bench's imet-2020-fgvc7/description.md
# (label groups from https://github.com/phalanx-hk/kaggle_practice imet2020/README.md): train.csv
# "id,attribute_ids" with space-separated attribute indices; labels.csv "attribute_id,attribute_name"
# (3,474 attributes named "country::", "culture::", "dimension::", "medium::", "tags::"); train/{id}.png,
# test/{id}.png;
# sample_submission.csv "id,attribute_ids" ("00011f01965f141f5d1eea6592fa9862,0 1 2").
# Metric: micro-averaged F1.
IMET_GROUPS = [("country", 100), ("culture", 681), ("dimension", 5), ("medium", 1920), ("tags", 768)]
IMET_CLASSES = sum(n for _, n in IMET_GROUPS)  # 3474


def write_imet(data: Path, n_train: int = 24, n_test: int = 6, seed: int = 5) -> Written:
    """labels.csv (3,474 attributes), train.csv (indices), {train,test}/{id}.png, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    names = [f"{group}::{group}_{k}" for group, n in IMET_GROUPS for k in range(n)]
    _csv(pd.DataFrame({"attribute_id": range(IMET_CLASSES), "attribute_name": names}), data / "labels.csv")
    ids = [_hex(rng, 32) for _ in range(n_train + n_test)]
    for i, id_ in enumerate(ids):
        _save(data / ("train" if i < n_train else "test") / f"{id_}.png", _pixels(rng, 32))
    pool = [13, 51, 147, 189, 671, 813, 1092, 1660, 2362, 3192, 3465]  # a few attributes of every group
    labels = [
        " ".join(str(a) for a in sorted(rng.choice(pool, int(rng.integers(1, 4)), replace=False)))
        for _ in range(n_train)
    ]
    _csv(pd.DataFrame({"id": ids[:n_train], "attribute_ids": labels}), data / "train.csv")
    _csv(pd.DataFrame({"id": ids[n_train:], "attribute_ids": "0 1 2"}), data / "sample_submission.csv")
    return Written(
        data,
        data / "sample_submission.csv",
        ids[n_train:],
        {"attribute_ids": [str(k) for k in range(IMET_CLASSES)]},
    )


# --- hpa-single-cell-image-classification -------------------------------------------------------
# https://www.kaggle.com/c/hpa-single-cell-image-classification/data (the competition as analysed in
# https://pmc.ncbi.nlm.nih.gov/articles/PMC9550622 and the solutions at
# https://geeksrepos.com/SunRunAI/HPA_single_cell_classification): train.csv "ID,Label" with
# image-level labels separated by "|" ("8|5|0"), 19 classes (0-17 locations, 18 negative);
# train/{ID}_{red,green,blue,yellow}.png, one grey file per stain (microtubules, protein, nucleus,
# ER); test/ likewise; sample_submission.csv "ID,ImageWidth,ImageHeight,PredictionString".
# Metric: mAP over cells (a PredictionString holds "class confidence mask" triples per cell).
HPA_COLOURS = ["red", "green", "blue", "yellow"]


def write_hpa(data: Path, n_train: int = 20, n_test: int = 6, seed: int = 6) -> Written:
    """train.csv ("|"-separated labels), {train,test}/{ID}_{colour}.png, sample_submission.csv."""
    rng = np.random.default_rng(seed)
    ids = [f"{_hex(rng, 8)}-bb99-11e8-b2b9-{_hex(rng, 12)}" for _ in range(n_train + n_test)]
    for i, id_ in enumerate(ids):
        for colour in HPA_COLOURS:
            _save(data / ("train" if i < n_train else "test") / f"{id_}_{colour}.png", _pixels(rng, 32, 1))
    labels = [
        "|".join(str(c) for c in rng.choice(19, int(rng.integers(1, 4)), replace=False))
        for _ in range(n_train)
    ]
    _csv(pd.DataFrame({"ID": ids[:n_train], "Label": labels}), data / "train.csv")
    sample = pd.DataFrame(
        {
            "ID": ids[n_train:],
            "ImageWidth": 32,
            "ImageHeight": 32,
            "PredictionString": "0 1 eNoLCAgIMAEABJkBdQ==",
        }
    )
    _csv(sample, data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", ids[n_train:])


# --- isic-2024-challenge ------------------------------------------------------------------------
# https://www.kaggle.com/c/isic-2024-challenge/data, as described at
# https://junaidaliop.github.io/isic2024-tbp/submission.html and
# https://github.com/ISIC-Research/Challenge-2024-Metrics: train-image.hdf5 (one JPEG's bytes per
# isic_id), train-image/image/{isic_id}.jpg (the same JPEGs), train-metadata.csv (isic_id, target
# 0/1, patient_id, ... clinical and TBP columns), test-image.hdf5, test-metadata.csv (no target),
# sample_submission.csv "isic_id,target" (0.3 each). Malignant lesions are ~0.1% of the rows and a
# patient has many lesions. Metric: partial AUC above 80% TPR.
_ISIC_EXTRA = {
    "age_approx": [45.0, 60.0, None, 35.0],
    "sex": ["male", "female", "male", ""],
    "anatom_site_general": ["lower extremity", "head/neck", "posterior torso", "anterior torso"],
    "clin_size_long_diam_mm": [3.04, 1.1, 3.4, 2.6],
    "image_type": ["TBP tile: close-up"] * 4,
    "tbp_tile_type": ["3D: white", "3D: XP", "3D: white", "3D: XP"],
    "tbp_lv_areaMM2": [3.15, 0.92, 3.81, 2.5],
    "attribution": ["Memorial Sloan Kettering Cancer Center"] * 4,
    "copyright_license": ["CC-BY"] * 4,
}


def write_isic(data: Path, n_train: int = 24, n_test: int = 6, seed: int = 7) -> Written:
    """{train,test}-image.hdf5 (JPEG bytes by isic_id), train-image/image/*.jpg, metadata, sample."""
    import h5py

    rng = np.random.default_rng(seed)
    ids = [f"ISIC_{i:07d}" for i in rng.choice(10**7, n_train + n_test, replace=False)]
    data.mkdir(parents=True, exist_ok=True)
    for split, chunk in (("train", ids[:n_train]), ("test", ids[n_train:])):
        with h5py.File(data / f"{split}-image.hdf5", "w") as f:
            for isic_id in chunk:
                jpeg = _jpeg_bytes(_pixels(rng, 32))
                f.create_dataset(isic_id, data=np.bytes_(jpeg))  # fixed-length string, as shipped
                if split == "train":
                    (data / "train-image/image").mkdir(parents=True, exist_ok=True)
                    (data / f"train-image/image/{isic_id}.jpg").write_bytes(jpeg)
    positives = {1, 8, 15, 22}  # 4 malignant among 24, each at another patient (i % 6)
    patients = [f"IP_{1000000 + i % 6 * 1111:07d}" for i in range(n_train + n_test)]
    extra = {k: [v[i % 4] for i in range(n_train + n_test)] for k, v in _ISIC_EXTRA.items()}
    meta = pd.DataFrame({"isic_id": ids, "patient_id": patients, **extra})
    train = meta.iloc[:n_train].copy()
    train.insert(1, "target", [int(i in positives) for i in range(n_train)])
    train["iddx_full"] = ["Malignant::Melanoma" if i in positives else "Benign" for i in range(n_train)]
    _csv(train, data / "train-metadata.csv")
    _csv(meta.iloc[n_train:], data / "test-metadata.csv")
    _csv(pd.DataFrame({"isic_id": ids[n_train:], "target": 0.3}), data / "sample_submission.csv")
    return Written(data, data / "sample_submission.csv", ids[n_train:])


# --- rsna-intracranial-hemorrhage-detection -----------------------------------------------------
# https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection/data, as published in
# https://github-wiki-see.page/m/RSNA/AI-Challenge-Data/wiki/RSNA-Intracranial-Hemorrhage-Detection:
# stage_2_train.csv "ID,Label" in long format, ID = "ID_{image}_{subtype}", six rows an image
# (epidural, intraparenchymal, intraventricular, subarachnoid, subdural, any); stage_2_train/ and
# stage_2_test/ hold ID_{image}.dcm CT slices (16-bit, RescaleSlope/RescaleIntercept to Hounsfield
# units, a brain window); stage_2_sample_submission.csv "ID,Label" (0.5) lists the test ids in the
# same long format (no test csv). Metric: weighted multi-label log loss, "any" weighted higher
# (x2, https://mc.ai/detecting-intracranial-hemorrhage-with-deep-learning/).
RSNA_SUBTYPES = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]


def _dicom(path: Path, image_id: str, rng: np.random.Generator, signed: bool, size: int = 32) -> None:
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = image_id  # the competition's UIDs are "ID_..." strings, not valid UIDs
    ds.StudyInstanceUID = f"ID_{_hex(rng, 10)}"
    ds.SeriesInstanceUID = f"ID_{_hex(rng, 10)}"
    ds.Modality = "CT"
    ds.PatientID = f"ID_{_hex(rng, 8)}"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    hu = rng.integers(-1000, 100, (size, size))
    a, b = sorted(rng.integers(0, size, 2))
    hu[a : b + 1, a : b + 1] = rng.integers(30, 80)  # brain/blood densities inside the window
    if signed:  # the scanners differ: signed slices pad outside the field of view with -2000 HU
        hu[0, :] = -2000
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.WindowCenter, ds.WindowWidth = [36, 36], [80, 80]  # multi-valued, as some files have
        ds.PixelData = (hu + 1024).astype(np.int16).tobytes()
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def _quiet_dicom(path: Path, image_id: str, rng: np.random.Generator, signed: bool) -> None:
    with warnings.catch_warnings():  # pydicom warns on every "ID_..." UID; the files are as shipped
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        _dicom(path, image_id, rng, signed)


def write_rsna(data: Path, n_train: int = 18, n_test: int = 6, seed: int = 8) -> Written:
    """stage_2_train.csv (long), stage_2_{train,test}/ID_*.dcm, stage_2_sample_submission.csv."""
    rng = np.random.default_rng(seed)
    ids = [f"ID_{_hex(rng, 9)}" for _ in range(n_train + n_test)]
    for i, image_id in enumerate(ids):
        _quiet_dicom(
            data / ("stage_2_train" if i < n_train else "stage_2_test") / f"{image_id}.dcm",
            image_id,
            rng,
            signed=i % 2 == 1,
        )
    rows = []
    for i, image_id in enumerate(ids[:n_train]):
        sub = [int((i + k) % 5 == 0 and i % 3 != 2) for k in range(5)]  # a third of the slices are clean
        for name, label in zip(RSNA_SUBTYPES, [*sub, max(sub)], strict=True):
            rows.append((f"{image_id}_{name}", label))
    # the published file repeats a few images' six rows (same values); users drop the repeats
    # (public code: "The provided manifest file has some duplicate IDs", drop_duplicates(subset="ID"))
    rows += rows[6 * 4 : 6 * 5]
    _csv(pd.DataFrame(rows, columns=["ID", "Label"]), data / "stage_2_train.csv")
    test_rows = [f"{image_id}_{name}" for image_id in ids[n_train:] for name in RSNA_SUBTYPES]
    _csv(pd.DataFrame({"ID": test_rows, "Label": 0.5}), data / "stage_2_sample_submission.csv")
    return Written(data, data / "stage_2_sample_submission.csv", test_rows)


LAYOUTS = {
    "digit-recognizer": write_digit_recognizer,
    "cassava-leaf-disease-classification": write_cassava,
    "aptos2019-blindness-detection": write_aptos,
    "plant-pathology-2021-fgvc8": write_plant_pathology,
    "ranzcr-clip-catheter-line-classification": write_ranzcr,
    "imet-2020-fgvc7": write_imet,
    "hpa-single-cell-image-classification": write_hpa,
    "isic-2024-challenge": write_isic,
    "rsna-intracranial-hemorrhage-detection": write_rsna,
}

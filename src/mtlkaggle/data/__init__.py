"""Label files of each original layout, images, and the loaders that turn them into batches.

- ``formats``: readers of each competition's original file layout.
- ``labels``: :class:`LabelTable` and the validated parsing of every split.
- ``images``: decoding, with one error type that names the file.
- ``sources``: :class:`~mtlkaggle.data.sources.ImageSource` (files, channel stacks, pixel columns,
  HDF5, DICOM): every consumer reads a row's image through one.
- ``locate``: the spec's path templates per split, and the source built from them.
- ``loading``: transforms, the Dataset, the seeded sampler and the DataLoader builder.
"""

from mtlkaggle.data.images import ImageReadError, load_image, verify_image
from mtlkaggle.data.labels import (
    LabelTable,
    has_split,
    parse_label_file,
    parse_split,
    read_split,
    task_matrix,
)
from mtlkaggle.errors import Problem

__all__ = [
    "ImageReadError",
    "LabelTable",
    "Problem",
    "has_split",
    "load_image",
    "parse_label_file",
    "parse_split",
    "read_split",
    "task_matrix",
    "verify_image",
]

"""Data sets: a registry of named image data sets, their readers, downloads and cache.

Load one with :func:`load_dataset`; see :mod:`tensorrnn.data.registry` for the
split conventions and where files are looked for, and ``docs/DATA.md``.

>>> from tensorrnn.data import load_dataset
>>> ds = load_dataset("digits", seed=0)
>>> ds.train.images.shape, ds.train.images.dtype, ds.info.pixel_range
(torch.Size([1294, 1, 8, 8]), torch.float32, (0.0, 1.0))
"""

from tensorrnn.data.registry import (
    DEBIAN_FASHION_DIR,
    ENV_VAR,
    Dataset,
    DatasetInfo,
    DatasetStatus,
    Split,
    data_roots,
    dataset_status,
    default_dataset,
    download_dataset,
    list_datasets,
    load_dataset,
)
from tensorrnn.data.synthetic import teacher_scores

__all__ = [
    "DEBIAN_FASHION_DIR",
    "ENV_VAR",
    "Dataset",
    "DatasetInfo",
    "DatasetStatus",
    "Split",
    "data_roots",
    "dataset_status",
    "default_dataset",
    "download_dataset",
    "list_datasets",
    "load_dataset",
    "teacher_scores",
]

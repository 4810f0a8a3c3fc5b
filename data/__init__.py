"""Datasets, samplers and the paper's preprocessing.

Names resolve on first use (PEP 562), so importing ``data.names`` for the options does not load PyTorch, OpenCV and
PIL: ``--help`` and usage errors answer at once.
"""

import importlib
from typing import Any

_WHERE = {
    # data.names
    "LABEL_FOLDERS": "data.names",
    "PAPER_MEAN_SETS": "data.names",
    "PAPER_TEST_SETS": "data.names",
    "PAPER_TRAIN_CLASSES": "data.names",
    "PROTOCOLS": "data.names",
    "Protocol": "data.names",
    "protocol_list": "data.names",
    "INTERPOLATIONS": "data.names",
    "JPEG_METHODS": "data.names",
    # data.datasets
    "BadImage": "data.datasets",
    "Batch": "data.datasets",
    "MAX_PIXELS": "data.datasets",
    "PREFETCH": "data.datasets",
    "DatasetError": "data.datasets",
    "ImageDataset": "data.datasets",
    "Sample": "data.datasets",
    "SeededSampler": "data.datasets",
    "SizeGroupedBatches": "data.datasets",
    "balanced_weights": "data.datasets",
    "collate": "data.datasets",
    "find_test_sets": "data.datasets",
    "image_size": "data.datasets",
    "init_worker": "data.datasets",
    "is_set_folder": "data.datasets",
    "list_images": "data.datasets",
    "load_rgb": "data.datasets",
    "scan_folder": "data.datasets",
    # data.transforms
    "AugmentConfig": "data.augment",
    "EvalTransform": "data.transforms",
    "Normalization": "data.transforms",
    "Perturbation": "data.transforms",
    "TrainTransform": "data.transforms",
    "ValTransform": "data.transforms",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)

"""Datasets, samplers and the paper's preprocessing."""

from argparse import Namespace

from data.datasets import (
    PAPER_MEAN_SETS,
    PAPER_TEST_SETS,
    PAPER_TRAIN_CLASSES,
    PROTOCOLS,
    BadImage,
    Batch,
    DatasetError,
    ImageDataset,
    Protocol,
    Sample,
    SeededSampler,
    SizeGroupedBatches,
    balanced_weights,
    collate,
    find_test_sets,
    image_size,
    is_set_folder,
    list_images,
    load_rgb,
    scan_folder,
)
from data.transforms import AugmentConfig, EvalTransform, Perturbation, TrainTransform, ValTransform


def augment_config(opt: Namespace) -> AugmentConfig:
    """The training-transform settings named by the options."""
    return AugmentConfig(
        load_size=opt.load_size,
        crop_size=opt.crop_size,
        resize=not opt.no_resize,
        crop=not opt.no_crop,
        flip=not opt.no_flip,
        rz_interp=opt.rz_interp,
        blur_prob=opt.blur_prob,
        blur_sig=opt.blur_sig,
        jpg_prob=opt.jpg_prob,
        jpg_method=opt.jpg_method,
        jpg_qual=opt.jpg_qual,
    )


__all__ = [
    "PAPER_MEAN_SETS",
    "PAPER_TEST_SETS",
    "PAPER_TRAIN_CLASSES",
    "PROTOCOLS",
    "BadImage",
    "Batch",
    "collate",
    "Protocol",
    "AugmentConfig",
    "Perturbation",
    "SizeGroupedBatches",
    "find_test_sets",
    "image_size",
    "is_set_folder",
    "list_images",
    "DatasetError",
    "ImageDataset",
    "Sample",
    "SeededSampler",
    "EvalTransform",
    "TrainTransform",
    "ValTransform",
    "augment_config",
    "balanced_weights",
    "load_rgb",
    "scan_folder",
]

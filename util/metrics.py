"""Detection metrics as pure functions of labels (1 = fake) and scores (probability of fake)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score


def accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction correct when ``prob > threshold`` means fake (the authors' strict inequality); nan if empty."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if labels.size == 0:
        return math.nan
    return float(np.mean((probs > threshold) == (labels == 1)))


def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """AP with fake as the positive class (scikit-learn's definition); nan when only one label is present."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return math.nan
    return float(average_precision_score(labels, probs))


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AP, accuracy, accuracy on reals and on fakes, as the paper's tables report them."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    real, fake = labels == 0, labels == 1
    return {
        "ap": average_precision(labels, probs),
        "acc": accuracy(labels, probs, threshold),
        "r_acc": accuracy(labels[real], probs[real], threshold),
        "f_acc": accuracy(labels[fake], probs[fake], threshold),
    }

"""Detection metrics as pure functions of labels (1 = fake) and scores (probability of fake)."""

from __future__ import annotations

import math

import numpy as np


def _single_label(labels: np.ndarray) -> bool:
    return labels.size == 0 or labels.min() == labels.max()


def accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction correct when ``prob > threshold`` means fake (the authors' strict inequality); nan if empty."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if labels.size == 0:
        return math.nan
    return float(np.mean((probs > threshold) == (labels == 1)))


def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """AP with fake as the positive class, scikit-learn's ``average_precision_score`` (tested equal): the sum over
    the distinct scores, from the highest, of precision times the gain in recall; tied scores form one step.
    nan when only one label is present. Written here because importing scikit-learn takes a second or more."""
    labels = np.asarray(labels)
    if _single_label(labels):
        return math.nan
    order = np.argsort(-np.asarray(probs), kind="mergesort")
    scores, hits = np.asarray(probs)[order], (labels[order] == 1).astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # the last image of each run of equal scores
    true_pos = np.cumsum(hits)[ends]
    precision, recall = true_pos / (ends + 1), true_pos / true_pos[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random fake scores above a random real, a tie counting one
    half (Mann-Whitney, equal to scikit-learn's ``roc_auc_score``); nan with one label."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if _single_label(labels):
        return math.nan
    _, inverse, counts = np.unique(probs, return_inverse=True, return_counts=True)
    midranks = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank of each distinct score, ties averaged
    fake = labels == 1
    n_fake, n_real = int(fake.sum()), int((~fake).sum())
    return float((midranks[inverse][fake].sum() - n_fake * (n_fake + 1) / 2) / (n_fake * n_real))


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of the logits (the training loss), computed stably in float64; nan if empty."""
    labels, logits = np.asarray(labels, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    if labels.size == 0:
        return math.nan
    # -log sigmoid(z) for fakes, -log(1 - sigmoid(z)) for reals: softplus(-z) and softplus(z).
    signed = np.where(labels == 1, -logits, logits)
    return float(np.mean(np.logaddexp(0.0, signed)))


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AP, accuracy, accuracy on reals and on fakes (the paper's tables), and ROC AUC."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    real, fake = labels == 0, labels == 1
    return {
        "ap": average_precision(labels, probs),
        "acc": accuracy(labels, probs, threshold),
        "r_acc": accuracy(labels[real], probs[real], threshold),
        "f_acc": accuracy(labels[fake], probs[fake], threshold),
        "auc": roc_auc(labels, probs),
    }


def calibrate_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold that maximizes balanced accuracy (mean of real and fake accuracy) on a calibration split.

    Candidates lie midway between consecutive distinct scores (and just outside their range), so the choice
    does not sit on any calibration image. Balanced accuracy makes the choice independent of the split's
    real/fake ratio; among equally good thresholds the one nearest 0.5 wins, so a calibration set the model
    already separates at 0.5 keeps a threshold close to it.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if _single_label(labels):
        raise ValueError("calibration needs both real and fake images")
    values = np.unique(probs)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    # Images with score <= candidate are called real: count them per label with sorted searches.
    real, fake = np.sort(probs[labels == 0]), np.sort(probs[labels == 1])
    real_correct = np.searchsorted(real, candidates, side="right") / real.size
    fake_correct = 1.0 - np.searchsorted(fake, candidates, side="right") / fake.size
    balanced = (real_correct + fake_correct) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])

import math

import numpy as np
import pytest

from util.metrics import accuracy, average_precision, binary_metrics, calibrate_threshold, log_loss, roc_auc


def test_average_precision_with_ties_by_hand():
    # Thresholds 0.9 -> (P 1, R 1/2); 0.5 (a tied real and fake) -> (P 2/3, R 1): AP = 1/2 * 1 + 1/2 * 2/3.
    labels, probs = [1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]
    assert average_precision(labels, probs) == pytest.approx(1 / 2 + 1 / 3)


def test_auc_counts_a_tie_as_half():
    # Pairs (fake, real): (0.9, 0.5) 1, (0.9, 0.1) 1, (0.5, 0.5) 1/2, (0.5, 0.1) 1 -> 3.5 / 4.
    assert roc_auc([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.875)


def test_accuracies_use_a_strict_threshold():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.5, 0.2, 0.5, 0.7, 0.9])  # 0.5 is "real": the authors' `prob > 0.5`
    m = binary_metrics(labels, probs)
    assert m["acc"] == pytest.approx(4 / 5)
    assert m["r_acc"] == 1.0 and m["f_acc"] == pytest.approx(2 / 3)
    assert accuracy(labels, probs, threshold=0.1) == pytest.approx(3 / 5)


def test_one_label_leaves_ap_and_auc_undefined():
    m = binary_metrics(np.array([1, 1]), np.array([0.2, 0.9]))
    assert math.isnan(m["ap"]) and math.isnan(m["auc"]) and math.isnan(m["r_acc"])
    assert m["f_acc"] == 0.5


def test_calibrated_threshold_by_hand():
    # Balanced accuracy at the midpoints: .15 -> 2/3, .375 -> 5/6, .575 -> 2/3, .65 -> 5/6, .8 -> 2/3.
    # Two thresholds tie at 5/6; 0.375 is nearer to 0.5.
    labels = [0, 0, 0, 1, 1, 1]
    probs = [0.1, 0.2, 0.6, 0.55, 0.7, 0.9]
    assert calibrate_threshold(labels, probs) == pytest.approx(0.375)


def test_calibrated_threshold_balances_labels():
    # Plain accuracy ties (4/5) below everything and at 0.55; balanced accuracy prefers 0.55 (7/8 vs 1/2).
    assert calibrate_threshold([0, 1, 1, 1, 1], [0.3, 0.2, 0.8, 0.85, 0.9]) == pytest.approx(0.55)


def test_calibrated_threshold_separates_shifted_scores():
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(0.0, 0.1, 50), rng.uniform(0.15, 0.3, 50)  # all below 0.5: acc at 0.5 is 1/2
    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    probs = np.r_[real, fake]
    threshold = calibrate_threshold(labels, probs)
    assert real.max() < threshold < fake.min()
    assert accuracy(labels, probs, threshold) == 1.0 and accuracy(labels, probs) == 0.5


def test_calibration_needs_both_labels():
    with pytest.raises(ValueError):
        calibrate_threshold([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("ties", [False, True])
def test_ap_and_auc_equal_scikit_learn(ties):
    """The metrics are computed without scikit-learn (slow to import) and must equal its functions exactly."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(int(ties))
    for _ in range(100):
        n = int(rng.integers(2, 300))
        labels = np.r_[0, 1, rng.integers(0, 2, n)]
        probs = rng.random(n + 2).astype(np.float32)
        if ties:
            probs = np.round(probs * rng.integers(2, 8)) / 8
        assert average_precision(labels, probs) == pytest.approx(average_precision_score(labels, probs), abs=1e-12)
        assert roc_auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)


def test_log_loss_is_the_training_loss_and_stays_finite():
    labels, logits = np.array([0, 1, 1, 0]), np.array([-2.0, 0.5, 3.0, 1.0])
    expected = torch_bce(labels, logits)
    assert log_loss(labels, logits) == pytest.approx(expected, rel=1e-12)
    assert log_loss([1, 0], [1000.0, -1000.0]) == 0.0 and log_loss([0], [1000.0]) == pytest.approx(1000.0)
    assert math.isnan(log_loss([], []))


def torch_bce(labels: np.ndarray, logits: np.ndarray) -> float:
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits, dtype=torch.float64),
                                                                torch.tensor(labels, dtype=torch.float64)).item()

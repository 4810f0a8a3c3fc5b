import math

import pytest

from engine.early_stopping import CosineDecay, EarlyStopping


def run(accs, patience=2, lr=1e-4):
    stopper = EarlyStopping(patience=patience)
    actions, lrs = [], []
    for epoch, acc in enumerate(accs, start=1):
        action, _, lr = stopper.step(epoch, acc, lr)
        actions.append(action)
        lrs.append(lr)
        if action == "stop":
            break
    return stopper, actions, lrs


def test_improvement_needs_min_delta_then_drops_and_stops():
    # Gains of 0.0005 do not count (< 0.001), so patience 2 runs out at epoch 3.
    accs = [0.90, 0.9005, 0.9008,   # phase 1e-4: drop after epoch 3
            0.80, 0.8015, 0.8019,   # phase 1e-5 starts a new window; gains below 0.002 twice -> drop at 6
            0.95, 0.95, 0.95]       # phase 1e-6: no gain twice -> stop (1e-7 is below the minimum)
    stopper, actions, lrs = run(accs)
    assert actions == ["continue", "continue", "drop", "continue", "continue", "drop", "continue", "continue",
                       "stop"]
    assert lrs[2] == pytest.approx(1e-5) and lrs[5] == pytest.approx(1e-6) and lrs[8] == pytest.approx(1e-6)
    assert stopper.best_epoch == 7 and stopper.best == 0.95  # the global best, in the last phase


def test_global_best_survives_an_lr_drop():
    # The authors' code would call epoch 4 (first of the new phase) the best; the global best is epoch 1.
    stopper, actions, _ = run([0.99, 0.98, 0.97, 0.90, 0.91], patience=2)
    assert actions[:3] == ["continue", "continue", "drop"]
    assert stopper.best_epoch == 1
    bests = [EarlyStopping(patience=2)]
    flags = []
    for epoch, acc in enumerate([0.99, 0.98, 0.97, 0.90], start=1):
        flags.append(bests[0].step(epoch, acc, 1e-4)[1])
    assert flags == [True, False, False, False]


def test_second_phase_uses_larger_min_delta():
    stopper = EarlyStopping(patience=1)
    assert stopper.step(1, 0.5, 1e-4)[0] == "continue"
    assert stopper.step(2, 0.5, 1e-4)[0] == "drop"
    assert stopper.step(3, 0.6, 1e-5)[0] == "continue"      # new window baseline
    assert stopper.step(4, 0.6015, 1e-5)[0] == "drop"       # +0.0015 would count before the first drop, not now


def test_state_round_trip():
    stopper, _, _ = run([0.5, 0.6, 0.6, 0.6], patience=3)
    copy = EarlyStopping()
    copy.load_state_dict(stopper.state_dict())
    assert copy == stopper


def test_cosine_runs_every_epoch_and_tracks_the_watched_value():
    schedule = CosineDecay(base_lr=1e-3, epochs=4)
    steps = [schedule.step(epoch, value, 1e-3) for epoch, value in enumerate([0.2, 0.9, 0.5, 0.6], start=1)]
    assert [action for action, _, _ in steps] == ["continue", "continue", "continue", "stop"]
    assert [lr for _, _, lr in steps[:3]] == pytest.approx([1e-3 * (1 + math.cos(math.pi * k / 4)) / 2
                                                            for k in (1, 2, 3)])
    assert [best for _, best, _ in steps] == [True, True, False, False] and schedule.best_epoch == 2


def test_checkpoints_from_before_the_watched_metric_load():
    stopper = EarlyStopping()
    stopper.load_state_dict({"best_acc": 0.75, "best_epoch": 3, "phase_best": 0.75, "bad_epochs": 1, "drops": 0})
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs) == (0.75, 3, 1)

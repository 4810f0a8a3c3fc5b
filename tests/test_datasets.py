from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import (
    AugmentConfig,
    DatasetError,
    EvalTransform,
    ImageDataset,
    SeededSampler,
    SizeGroupedBatches,
    TrainTransform,
    ValTransform,
    balanced_weights,
    collate,
    find_test_sets,
    scan_folder,
)
from tests.helpers import random_image, write_png

AUG = AugmentConfig(load_size=36, crop_size=32, blur_prob=0.5, blur_sig=(0.0, 3.0), jpg_prob=0.5,
                    jpg_method=("cv2", "pil"), jpg_qual=(30, 100))


def test_scan_split_with_classes(labeled_tree):
    root = labeled_tree(classes=("cat", "dog", "cow"), per_label=2)
    samples = scan_folder(root / "train")
    assert len(samples) == 12
    assert {s.subclass for s in samples} == {"cat", "cow", "dog"}
    assert sum(s.label for s in samples) == 6
    chosen = scan_folder(root / "train", classes=("dog", "cat"))
    assert [s.subclass for s in chosen][::4] == ["dog", "cat"] and len(chosen) == 8
    with pytest.raises(DatasetError, match="not found: horse"):
        scan_folder(root / "train", classes=("cat", "horse"))


def test_scan_single_set_and_nested_images(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "set" / "0_real" / "a.png", random_image(rng, 8, 8))
    write_png(tmp_path / "set" / "1_fake" / "deep" / "b.PNG", random_image(rng, 8, 8))
    (tmp_path / "set" / "1_fake" / "notes.txt").write_text("not an image")
    samples = scan_folder(tmp_path / "set")
    assert [(s.label, s.subclass) for s in samples] == [(0, ""), (1, "")]


def test_scan_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(DatasetError, match="odd: expected 0_real/1_fake"):
        scan_folder(tmp_path / "odd")
    (tmp_path / "empty" / "0_real").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        scan_folder(tmp_path / "empty")


@pytest.fixture
def train_set(labeled_tree):
    return scan_folder(labeled_tree(per_label=4) / "train")


def test_same_seed_same_tensors_other_epoch_other_draws(train_set):
    a = ImageDataset(train_set, TrainTransform(AUG), seed=1)
    b = ImageDataset(train_set, TrainTransform(AUG), seed=1)
    c = ImageDataset(train_set, TrainTransform(AUG), seed=2)
    for i in range(len(train_set)):
        np.testing.assert_array_equal(a[(3, i)][0], b[(3, i)][0])
    differs_epoch = sum(not np.array_equal(a[(0, i)][0], a[(1, i)][0]) for i in range(len(train_set)))
    differs_seed = sum(not np.array_equal(a[(0, i)][0], c[(0, i)][0]) for i in range(len(train_set)))
    assert differs_epoch == len(train_set) and differs_seed == len(train_set)


def test_validation_is_identical_every_epoch(train_set):
    val = ImageDataset(train_set, ValTransform(AUG, perturb=True), seed=0)
    sampler = SeededSampler(len(val), shuffle=False)
    epochs = []
    for _ in range(3):
        sampler.set_epoch(0)  # validation never advances the epoch
        loader = DataLoader(val, batch_size=4, sampler=sampler, collate_fn=collate)
        epochs.append(torch.cat([batch.images for batch in loader]))
    torch.testing.assert_close(epochs[0], epochs[1], rtol=0, atol=0)
    torch.testing.assert_close(epochs[0], epochs[2], rtol=0, atol=0)
    # With perturbation on, some images really are perturbed (differ from the clean validation view).
    clean = ImageDataset(train_set, ValTransform(AUG, perturb=False), seed=0)
    assert sum(not np.array_equal(val[i][0], clean[i][0]) for i in range(len(val))) > 0


def test_cache_keeps_decoded_images_up_to_its_budget(train_set):
    image_bytes = 40 * 48 * 4  # as PIL holds RGB
    dataset = ImageDataset(train_set, TrainTransform(AUG), seed=3, cache_bytes=3 * image_bytes + image_bytes // 2)
    first = [dataset[(0, i)] for i in range(5)]
    for sample in train_set:
        Path(sample.path).unlink()
    again = [dataset[(0, i)] for i in range(5)]
    for before, after in zip(first[:3], again[:3], strict=True):  # from memory, same draws: the same pixels
        np.testing.assert_array_equal(before.image, after.image)
    assert [item.image is None for item in again[3:]] == [True, True]  # past the budget: read from disk again
    assert all("No such file" in item.reason for item in again[3:])
    assert not np.array_equal(dataset[(1, 0)].image, first[0].image)  # a cached image is still augmented anew


def test_zero_and_two_workers_give_identical_batches(train_set):
    dataset = ImageDataset(train_set, TrainTransform(AUG), seed=5)

    def batches(workers):
        sampler = SeededSampler(len(dataset), seed=5)
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=workers,
                                persistent_workers=workers > 0, collate_fn=collate)
            out += [(b.images, b.labels, b.indices) for b in loader]
        return out

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 12  # 16 images, batches of 3, two epochs
    for (x0, y0, i0), (x2, y2, i2) in zip(serial, parallel, strict=True):
        torch.testing.assert_close(x0, x2, rtol=0, atol=0)
        assert torch.equal(y0, y2) and torch.equal(i0, i2)


def test_sampler_order_resume_and_ranks():
    s = SeededSampler(10, seed=3)
    s.set_epoch(4)
    full = list(s)
    assert sorted(i for _, i in full) == list(range(10)) and {e for e, _ in full} == {4}
    s.set_epoch(4, start=6)
    assert list(s) == full[6:] and len(s) == 4
    s.set_epoch(5)
    assert [i for _, i in s] != [i for _, i in full]
    ranks = [SeededSampler(10, seed=3, rank=r, world_size=4) for r in range(4)]
    for r in ranks:
        r.set_epoch(4)
    parts = [[i for _, i in r] for r in ranks]
    assert all(len(p) == 3 for p in parts)  # 10 padded to 12
    assert sorted(sum(parts, [])) == sorted([i for _, i in full] + [i for _, i in full[:2]])
    serial = SeededSampler(5, shuffle=False)
    assert [i for _, i in serial] == [0, 1, 2, 3, 4]


def test_class_balance_weights():
    labels = np.array([0] * 90 + [1] * 10)
    w = balanced_weights(labels)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    s = SeededSampler(100, weights=w, seed=0)
    drawn = labels[[i for _, i in s]]
    assert 35 <= drawn.sum() <= 65  # about half fake although only 10% of files are fake


def test_eval_transform_no_crop_keeps_size(train_set):
    ds = ImageDataset(train_set, EvalTransform(crop_size=None))
    assert ds[0][0].shape == (40, 48, 3)
    assert ImageDataset(train_set, EvalTransform(crop_size=32))[0][0].shape == (32, 32, 3)


def test_find_test_sets_order_selection_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    for rel in ["zebra/0_real", "biggan/1_fake", "progan/cat/0_real", "apple/1_fake", "cyclegan/horse/1_fake"]:
        write_png(tmp_path / rel / "0.png", random_image(rng, 8, 8))
    (tmp_path / "notes").mkdir()  # not a set
    found = [name for name, _ in find_test_sets(tmp_path)]
    assert found == ["progan", "biggan", "cyclegan", "apple", "zebra"]  # Table 2 order, then alphabetical
    assert [n for n, _ in find_test_sets(tmp_path, ["zebra", "progan"])] == ["zebra", "progan"]
    assert find_test_sets(tmp_path / "biggan") == [("biggan", tmp_path / "biggan")]
    with pytest.raises(DatasetError, match="not found: stylegan"):
        find_test_sets(tmp_path, ["stylegan"])
    with pytest.raises(DatasetError, match="no test sets"):
        find_test_sets(tmp_path / "notes")


def test_size_grouped_batches_cover_every_index_once():
    sizes = [(4, 4), (5, 4), (4, 4), (4, 4), (5, 4), (6, 6), (4, 4)]
    batches = list(SizeGroupedBatches(sizes, batch_size=2))
    assert batches == [[0, 2], [3, 6], [1, 4], [5]]
    assert all(len({sizes[i] for i in b}) == 1 for b in batches)


def test_files_that_are_not_images_are_counted_and_named(tmp_path, capsys):
    from commands.demo import collect
    from data.datasets import left_out_note, walk_files

    for name in ("a.png", "b.heic", "c.HEIC", "notes", ".DS_Store", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    images, others, refused = walk_files(tmp_path)
    assert [Path(p).name for p in images] == ["a.png"]
    assert [Path(p).name for p in others] == ["b.heic", "c.HEIC", "d.txt", "notes"]
    assert [(Path(p).name, reason) for p, reason in refused] == [(".DS_Store", "hidden file (left out)")]
    assert left_out_note(others) == ("4 files left out (not images): .heic (pip install pillow-heif to read them), "
                                     ".txt, no extension")
    assert left_out_note(others[:1]).startswith("1 file left out")
    assert left_out_note([]) is None
    assert [(s.path, s.refused) for s in collect(str(tmp_path))] == [(images[0], None), (*refused[0],)]
    assert "4 files left out (not images)" in capsys.readouterr().out

import torch
from torch import nn

from data import Batch, Normalization
from engine.averaging import WeightAverage, recompute_batchnorm


def _batch(seed: int, size: int = 4) -> Batch:
    images = torch.randint(0, 256, (size, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return Batch(images, torch.zeros(size, dtype=torch.int64), torch.arange(size), [])


def test_the_average_is_the_mean_of_the_updates_and_survives_a_checkpoint():
    torch.manual_seed(0)
    models = [nn.Linear(3, 2) for _ in range(3)]
    average = WeightAverage(models[0])
    for epoch, model in enumerate(models, start=1):
        average.update(model, epoch)
    average.update(models[0], 3)  # epoch 3 again, as after an interrupt during its validation: not added twice
    target = nn.Linear(3, 2)
    restored = WeightAverage(target)
    restored.load_state_dict(average.state_dict())
    restored.copy_to(target)
    assert restored.count == 3
    torch.testing.assert_close(target.weight, sum(m.weight for m in models) / 3)
    torch.testing.assert_close(target.bias, sum(m.bias for m in models) / 3)


def test_batchnorm_statistics_are_the_mean_over_the_pass():
    norm = nn.BatchNorm2d(3)
    norm.running_mean.fill_(5.0)  # whatever training left there is replaced
    batches = [_batch(seed) for seed in range(3)] + [_batch(9, size=1)]  # one image: no statistics, skipped
    normalization = Normalization((0.5, 0.25, 0.75), (0.2, 0.3, 0.4))
    recompute_batchnorm(norm, batches, torch.device("cpu"), normalization=normalization)
    inputs = [normalization(b.images, torch.contiguous_format) for b in batches[:3]]
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs])
    variances = torch.stack([x.transpose(0, 1).reshape(3, -1).var(dim=1) for x in inputs])  # unbiased, as BN keeps
    torch.testing.assert_close(norm.running_mean, means.mean(0))
    torch.testing.assert_close(norm.running_var, variances.mean(0))
    assert norm.momentum == 0.1 and norm.training


def test_a_frozen_tower_is_neither_averaged_nor_stored_and_a_net_without_batchnorm_is_not_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    average = WeightAverage(model)
    average.update(model, 1)
    with torch.no_grad():
        model[0].weight.add_(1.0)  # never happens to a frozen tower; were it averaged, copy_to would undo it
        model[1].weight.add_(2.0)
    average.update(model, 2)
    average.copy_to(model)
    assert sorted(average.state_dict()["params"]) == ["1.bias", "1.weight"]
    torch.testing.assert_close(model[0].weight, frozen + 1.0)
    calls = []
    recompute_batchnorm(model, iter(lambda: calls.append(1), None), torch.device("cpu"),
                        normalization=Normalization((0.5,) * 3, (0.5,) * 3))
    assert not calls  # the batches were never drawn

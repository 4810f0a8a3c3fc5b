"""Measure throughput against its bounds: the model alone vs eval.py's and train.py's paths, on CPU and CUDA.

    python benchmark.py                                   # ResNet-50, batch 32, 128 images per measurement
    python benchmark.py --devices cuda --amp bf16 --batch_size 128 --images 4096

Writes results/benchmark/benchmark.json and benchmark.md (images/s, peak memory, the ratios eval/forward and
train/train_step, no-crop batched/batch 1).
"""

import gc

from options import parse_benchmark_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_benchmark_options(argv)
    with user_errors(cfg.debug):
        from commands.benchmark import run_benchmark  # after parsing: --help and usage errors need no PyTorch

        run_benchmark(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

"""Measure throughput against its bounds: the model alone vs eval.py's and train.py's paths, on CPU and CUDA.

    python benchmark.py                                   # ResNet-50, batch 32 on CPU, spans of at least 20 s
    python benchmark.py --devices cuda --amp bf16 --batch_size 64

Writes results/benchmark/benchmark.json and benchmark.md (images/s over steady spans, peak memory, the ratios,
end-to-end train.py and eval.py times); a measurement faster than its bound or its loader is marked invalid and
makes the run exit with status 2.
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

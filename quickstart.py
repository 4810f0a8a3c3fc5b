"""The embedded default: the paper's experiment in miniature, offline, on a CPU, in one command.

    python quickstart.py                    # build the mini-benchmark, train, evaluate, demo (minutes on 2 cores)
    python quickstart.py --size small --seed 1
    python quickstart.py --real_dir ~/photos   # your own photographs as the real images

The benchmark lands in dataset/mini/ (reused while its settings match), the detector in
checkpoints/quickstart_<size>_seed<seed>/, the tables in results/quickstart_<size>_seed<seed>/.
"""

import gc

from options import parse_quickstart_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_quickstart_options(argv)
    with user_errors(cfg.debug):
        from commands.quickstart import run_quickstart  # after parsing: --help and usage errors need no PyTorch

        run_quickstart(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

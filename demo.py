"""Probability that an image is synthetic, as the authors' demo prints it; also folders and globs.

    python demo.py -f examples/real.png -m weights/blur_jpg_prob0.5.pth
    python demo.py -f ./my_images/ -m weights/blur_jpg_prob0.5.pth --out scores.csv
    python demo.py -f "./photos/**/*.jpg" -c 224
"""

import gc

from options import parse_demo_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_demo_options(argv)
    with user_errors(cfg.debug):
        from commands.demo import run_demo  # after parsing: --help and usage errors need no PyTorch

        run_demo(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

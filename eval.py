"""Evaluate a detector on the ForenSynths test sets (the paper's Table 2), or on any folder in that layout.

    python eval.py --dataroot ./dataset/test --model_path weights/blur_jpg_prob0.5.pth
    python eval.py ... --calibrate_on ./dataset/val          # also accuracy at a threshold chosen on ProGAN val
    python eval.py ... --no_crop                              # whole images, batched by size
    python eval.py ... --sweep jpeg 100,90,80,70,60,50,40,30  # robustness curve (the paper's Fig. 5)

Results: <results_dir>/<checkpoint name>/{scores.csv, summary.csv, summary.md, opt.json, ...}.
"""

import gc

from options import parse_eval_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_eval_options(argv)
    with user_errors(cfg.debug):
        from engine.evaluation import evaluate  # after parsing: --help and usage errors need no PyTorch

        evaluate(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

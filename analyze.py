"""The paper's analyses as files a paper can use.

    python analyze.py spectra --dataroot ./dataset/test                  # Fig. 7: spectra.png + <set>_{real,fake}.npy
    python analyze.py ranking --scores results/blur_jpg_prob0.5/scores.csv  # Fig. 6: galleries + HTML pages
    python analyze.py ablation --dataroot ./dataset/ --num_classes 2,4,8,16,20 --blur_prob 0.5 ...  # Fig. 3

`ablation` takes every train.py option; each class count is an ordinary training run, then an eval.py run.
"""

import gc
import importlib

from options import parse_analyze_options
from util.errors import user_errors

COMMANDS = {"spectra": "commands.spectra:run_spectra", "ranking": "commands.ranking:run_ranking",
            "ablation": "commands.ablation:run_ablation"}


def main(argv: list[str] | None = None) -> None:
    command, cfg, debug = parse_analyze_options(argv)
    with user_errors(debug):
        module, function = COMMANDS[command].split(":")  # imported after parsing, as it needs PyTorch
        getattr(importlib.import_module(module), function)(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

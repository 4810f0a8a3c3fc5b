"""The paper's analyses as files a paper can use.

    python analyze.py spectra --dataroot ./dataset/test                  # Fig. 7: spectra.png + <set>_{real,fake}.npy
    python analyze.py ranking --scores results/blur_jpg_prob0.5/scores.csv  # Fig. 6: galleries + HTML pages
    python analyze.py ablation --dataroot ./dataset/ --num_classes 2,4,8,16,20 --blur_prob 0.5 ...  # Fig. 3

`ablation` takes every train.py option; each class count is an ordinary training run, then an eval.py run.
"""

from commands.ablation import run_ablation
from commands.ranking import run_ranking
from commands.spectra import run_spectra
from options import parse_analyze_options
from util.errors import user_errors

COMMANDS = {"spectra": run_spectra, "ranking": run_ranking, "ablation": run_ablation}


def main(argv: list[str] | None = None) -> None:
    command, cfg, debug = parse_analyze_options(argv)
    with user_errors(debug):
        COMMANDS[command](cfg)


if __name__ == "__main__":
    main()

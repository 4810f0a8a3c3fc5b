"""The paper's analyses as files a paper can use.

    python analyze.py spectra --dataroot ./dataset/test                  # Fig. 7: spectra.png + <set>_{real,fake}.npy
    python analyze.py ranking --scores results/blur_jpg_prob0.5/scores.csv  # Fig. 6: galleries + HTML pages
    python analyze.py ablation --dataroot ./dataset/ --num_classes 2,4,8,16,20 --blur_prob 0.5 ...  # Fig. 3

`ablation` takes every train.py option; each class count is an ordinary training run, then an eval.py run.
"""

from options.options import parse_analyze_options, train_options
from util.ablation import run_ablation
from util.errors import user_errors
from util.ranking import run_ranking
from util.spectra import run_spectra


def main(argv: list[str] | None = None) -> None:
    opt = parse_analyze_options(argv)
    with user_errors(opt.debug):
        if opt.command == "spectra":
            run_spectra(opt)
        elif opt.command == "ranking":
            run_ranking(opt)
        else:
            run_ablation(opt, train_options(opt))


if __name__ == "__main__":
    main()

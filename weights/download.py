"""Download the authors' released detectors into weights/ and check their size and sha256.

    python -m weights.download                      # the paper's two ResNet-50s
    python -m weights.download blur_jpg_prob0.1     # one of them
    python -m weights.download univfd               # UnivFD's head and OpenAI's CLIP ViT-L/14 (0.9 GB)
"""

from networks.released import RELEASED, download_released
from options import parse_weights_download_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    opt = parse_weights_download_options(argv)
    with user_errors(opt.debug):
        for name in opt.names:
            print(f"{download_released(name, opt.dir)}: sha256 verified")
            tower = RELEASED[name].tower
            if tower is not None:
                from networks.clip import fetch_tower  # PyTorch: only to convert the tower

                print(f"{fetch_tower(tower)}: {tower.name}, made from {tower.url.rsplit('/', 1)[-1]} (sha256 "
                      f"verified)")


if __name__ == "__main__":
    main()

"""A local web page for the detector: drop images, see the probability that each is synthetic, its verdict and its
high-pass spectrum; the same server answers scripts (api_name="score").

    python app.py                                   # the quickstart's detector, http://127.0.0.1:7860
    python app.py -m blur_jpg_prob0.5 --port 8080   # the authors' released model
"""

import gc

from options import parse_app_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_app_options(argv)
    with user_errors(cfg.debug):
        from commands.app import serve  # after parsing: --help and usage errors need neither PyTorch nor Gradio

        serve(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

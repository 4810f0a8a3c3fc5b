"""The parser-level pieces that are not a config's option: the authors' ``--gpu_ids`` and the download scripts'
released-model names (every config option parses its text as its ``option`` says)."""

from __future__ import annotations

import argparse

from networks.released import RELEASED


def released_name(text: str) -> str:
    if text not in RELEASED:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(RELEASED)}")
    return text


class GpuIdsAction(argparse.Action):
    """The authors' ``--gpu_ids``: ``-1`` means CPU, ``N`` means ``cuda:N``; several GPUs go through torchrun."""

    def __call__(self, parser, namespace, values, option_string=None):
        ids = [v.strip() for v in str(values).split(",") if v.strip()]
        if ids == ["-1"]:
            namespace.device = "cpu"
        elif len(ids) == 1 and ids[0].isdigit():
            namespace.device = f"cuda:{ids[0]}"
        elif len(ids) > 1 and all(i.isdigit() for i in ids):
            parser.error(
                f"--gpu_ids {values}: one process drives one GPU here; for {len(ids)} GPUs run "
                f"`torchrun --nproc_per_node {len(ids)} train.py ...` (CUDA_VISIBLE_DEVICES={values} selects them)"
            )
        else:
            parser.error(f"--gpu_ids {values!r}: give -1 (CPU) or a GPU index")

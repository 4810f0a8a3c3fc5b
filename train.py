"""Train the real/fake detector with the paper's recipe.

The authors' command works unchanged:

    python train.py --name blur_jpg_prob0.5 --blur_prob 0.5 --blur_sig 0.0,3.0 --jpg_prob 0.5 \
        --jpg_method cv2,pil --jpg_qual 30,100 --dataroot ./dataset/ \
        --classes airplane,bird,bicycle,boat,bottle,bus,car,cat,cow,chair,diningtable,dog,person,pottedplant,motorbike,tvmonitor,train,sheep,sofa,horse

Several GPUs (one process each; --batch_size is per process):

    torchrun --nproc_per_node 4 train.py --name blur_jpg_prob0.5 --batch_size 16 ...

Resume after a stop or a crash: the same command plus --continue_train.
"""

import gc

from options import parse_train_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    cfg = parse_train_options(argv)
    with user_errors(cfg.debug):
        from engine.training import train  # after parsing: --help and usage errors need no PyTorch

        train(cfg)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit then skips a last sweep over every object PyTorch made (0.5-2 s)

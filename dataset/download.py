"""Download the ForenSynths data from the authors' mirror (resumable, checksummed), or count what is there.

    python -m dataset.download test val            # dataset/test/, dataset/val/
    python -m dataset.download train               # the 7-part training archive (about 74.7 GB)
    python -m dataset.download test --verify       # image counts per set against the reference counts
"""

import sys

from data.forensynths import prepare
from options import parse_dataset_download_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    opt = parse_dataset_download_options(argv)
    with user_errors(opt.debug):
        if not prepare(opt.splits, opt.root, opt.base_url, verify_only=opt.verify,
                       delete_archives=opt.delete_archives) and opt.verify:
            sys.exit(1)


if __name__ == "__main__":
    main()

"""Download the test data (resumable, checksummed), or count what is there.

    python -m dataset.download test val            # ForenSynths: dataset/test/, dataset/val/
    python -m dataset.download train               # the 7-part training archive (about 74.7 GB)
    python -m dataset.download test --verify       # image counts per set against the reference counts
    python -m dataset.download synthbuster         # Synthbuster from Zenodo: dataset/synthbuster/
    python -m dataset.download univfd              # where to get a suite without a direct link, and its layout
"""

import sys

from data.forensynths import SPLITS, prepare
from data.suite_downloads import prepare_suite
from options import parse_dataset_download_options
from util.errors import user_errors


def main(argv: list[str] | None = None) -> None:
    opt = parse_dataset_download_options(argv)
    with user_errors(opt.debug):
        splits = [name for name in opt.names if name in SPLITS]
        ok = prepare(splits, opt.root, opt.base_url, verify_only=opt.verify, delete_archives=opt.delete_archives)
        for name in opt.names:
            if name not in SPLITS:
                ok &= prepare_suite(name, opt.root, opt.zenodo_api, verify_only=opt.verify,
                                    delete_archives=opt.delete_archives)
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()

"""Command-line options shared by train.py, eval.py, demo.py and quickstart.py."""

from options.options import (
    demo_parser,
    describe_options,
    eval_parser,
    parse_demo_options,
    parse_eval_options,
    parse_quickstart_options,
    parse_train_options,
    save_options,
    train_parser,
)

__all__ = ["demo_parser", "describe_options", "eval_parser", "parse_demo_options", "parse_eval_options",
           "parse_quickstart_options", "parse_train_options", "save_options", "train_parser"]

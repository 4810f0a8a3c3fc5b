"""Command-line options shared by train.py, eval.py and demo.py."""

from options.options import describe_options, parse_train_options, save_options, train_parser

__all__ = ["describe_options", "parse_train_options", "save_options", "train_parser"]

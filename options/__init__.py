"""Command-line options: ``types`` parses single values, ``parsers`` builds each script's parser and turns its
arguments into the config dataclass its command takes. Scripts import from here only."""

from options.parsers import (
    analyze_parser,
    app_parser,
    benchmark_parser,
    demo_parser,
    eval_parser,
    parse_analyze_options,
    parse_app_options,
    parse_benchmark_options,
    parse_dataset_download_options,
    parse_demo_options,
    parse_eval_options,
    parse_quickstart_options,
    parse_train_options,
    parse_weights_download_options,
    quickstart_parser,
    train_parser,
)

__all__ = ["analyze_parser", "app_parser", "benchmark_parser", "demo_parser", "eval_parser", "parse_analyze_options",
           "parse_app_options", "parse_benchmark_options", "parse_dataset_download_options", "parse_demo_options",
           "parse_eval_options", "parse_quickstart_options", "parse_train_options", "parse_weights_download_options",
           "quickstart_parser", "train_parser"]

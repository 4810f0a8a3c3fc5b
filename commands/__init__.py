"""Commands built on the engine: the demo, the quickstart, the benchmark and the analyses (spectra, ranking,
ablation). Each takes a frozen config dataclass; the scripts build it from the command line."""

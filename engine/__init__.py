"""The engine: the training loop and its early stopping (``training``), loading a detector and scoring images
(``inference``), and the Table 2 evaluation (``evaluation``). Configs are frozen dataclasses, validated on
construction; the scripts build them from the command line (``options``)."""

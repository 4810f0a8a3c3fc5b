"""Model files; its download.py fetches the released detectors (python -m weights.download)."""

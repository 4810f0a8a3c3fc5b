"""Data folder; its download.py fetches the ForenSynths data (python -m dataset.download)."""

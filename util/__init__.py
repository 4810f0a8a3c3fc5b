"""Checkpoints, metrics, errors and process helpers."""

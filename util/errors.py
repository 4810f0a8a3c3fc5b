"""User-facing errors: scripts print them as one line, without a traceback unless --debug is given."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem the user can fix (bad path, wrong checkpoint, no network); its message says how."""


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Turn a UserError into ``error: <message>`` on stderr and exit status 2 (a traceback with ``debug``)."""
    try:
        yield
    except UserError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

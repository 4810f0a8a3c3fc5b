"""User-facing errors: scripts print them as one line, without a traceback unless --debug is given."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem the user can fix (bad path, wrong checkpoint, no network); its message says how."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """Settings that contradict each other or would be silently ignored; scripts report it as a usage error."""


class Interrupted(UserError):
    """Ctrl-C, after the work done so far was saved; the message says where."""

    exit_code = 130  # the shell's convention for SIGINT


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Turn a UserError into ``error: <message>`` on stderr and its exit status, 2 (130 after Ctrl-C); a traceback
    with ``debug``. Whatever the locale, printing never fails on a file name that is not UTF-8: such bytes show as
    escapes."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        yield
    except UserError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)

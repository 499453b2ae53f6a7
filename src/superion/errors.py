"""User-facing errors: one line that names the problem and what to do.

Raise :class:`SuperionError` for anything caused by the user's input (files, settings,
models); the CLI prints ``superion: error: <message>`` and exits with status 2 instead
of a traceback. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class SuperionError(Exception):
    """A problem with the user's input, reported as a single line."""

    exit_code = 2


class SimulationError(SuperionError):
    """A simulation went unphysical (explosion, NaN, overlap); the run is marked failed."""

    exit_code = 3

"""Typed errors raised by library code; only the CLI turns them into messages and exit codes."""


class ScalerError(Exception):
    """A failure the user should read as one line (exit code 1)."""

    exit_code = 1


class UsageError(ScalerError):
    """Bad input: a value, a file or a combination of options that cannot work (exit code 2)."""

    exit_code = 2


class ResultsError(ScalerError):
    """A run folder that cannot be read or written (bad input: exit code 2)."""

    exit_code = 2


class ResultsWriteError(ResultsError):
    """The results folder cannot take a save (full, read-only, gone): exit code 2, and the run
    folder keeps its previous save."""

    exit_code = 2

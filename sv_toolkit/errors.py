"""Errors a user can fix (a bad config value, a missing or unusable file), told apart from bugs.

Every class here derives from :class:`UserError`; the command-line tools print these as one line
(``prog: error: message``) and let every other exception keep its traceback, since that is a bug. Each also
derives from the builtin a caller would expect (``ValueError``, ``FileNotFoundError``), so ``except
ValueError`` around library calls keeps working.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message names the file / key / value and what to do."""


class ConfigError(UserError, ValueError):
    """A configuration key or command-line option has a value that cannot be used."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the run needs does not exist (usually: an earlier stage has not run)."""


class InputFileError(UserError, ValueError):
    """A file exists but its content cannot be used (malformed, inconsistent, of the wrong kind)."""


class ModelFileError(InputFileError):
    """A model or checkpoint file that cannot be loaded: not a model file, unsafe to unpickle, or too new."""


class MissingEntryError(UserError, KeyError):
    """A key named in one file (an utterance, a trial, a speaker) is absent from another."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(UserError, ImportError):
    """An optional dependency (an extra of sv_toolkit, e.g. [plot] or [export]) is needed but not installed."""

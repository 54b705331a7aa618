"""Errors that are the user's to fix.

Every entry point catches :class:`UserError` and prints its message without a traceback
(``--debug`` shows it); anything else is a bug in the project and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: config, data, checkpoint or command line."""


class ConfigError(UserError):
    """The config file (or an ``--opts`` override) is wrong."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class DatasetError(UserError):
    """The data set on disk is incomplete or holds invalid values."""

"""Errors a user can cause.

Every error that bad input can trigger is a :class:`TensorRNNError`. Its message
says what was wrong and how to fix it; the command line prints it on one line and
exits with status 2, without a traceback.
"""


class TensorRNNError(Exception):
    """Base class of every error caused by input (arguments, files, sizes)."""


class ConfigError(TensorRNNError):
    """A configuration value is unknown, has the wrong type or is out of range."""


class DataError(TensorRNNError):
    """A data file is missing, corrupt or fails a check."""


class SizeError(TensorRNNError):
    """A requested object would not fit in memory or has impossible sizes."""

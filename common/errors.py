"""Errors shared by the framework-free modules.

DataError is a ValueError so callers that only know "bad input" still catch it; its
message is always one line that says what went wrong and how to fix it."""


class DataError(ValueError):
    """Input data (MNIST files, downloads, dataset names) is missing, corrupt or unusable."""

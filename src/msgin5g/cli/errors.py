"""Errors that the command line reports without a traceback."""


class UsageError(Exception):
    """Invalid input on the command line; the message names the value and the fix."""

"""Errors raised by the key derivations.

Every error is a ValueError whose message names the parameter, states what is
wrong with it and never contains a key value.
"""


class CryptoInputError(ValueError):
    """An argument of a derivation has the wrong type, length or format."""

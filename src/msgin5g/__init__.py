"""AKMA-based authentication and authorization for MSGin5G (TS 33.501 Annex Y)."""

__version__ = "0.1.0"

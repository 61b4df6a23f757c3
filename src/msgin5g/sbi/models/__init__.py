"""Pydantic models of the SBI bodies, shaped on the 3GPP OpenAPI schemas.

One module per API. Field names are snake_case; the JSON names of the
OpenAPI files are the aliases, used both to read and to write.
"""

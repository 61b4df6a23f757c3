"""PSK callbacks for pyOpenSSL contexts, through cryptography's OpenSSL binding.

pyOpenSSL has no PSK API for TLS 1.2 and DTLS 1.2, but the binding it shares with
cryptography exposes SSL_CTX_set_psk_server_callback,
SSL_CTX_set_psk_client_callback and SSL_CTX_use_psk_identity_hint. This module is
the only one that reaches into that binding; tests/test_openssl_binding.py fails
loudly when a release of cryptography or pyOpenSSL drops these functions.

The cffi callback objects must outlive the context: each setter stores its
callback on the pyOpenSSL Context, so the callback lives as long as the context.
Each callback catches its own exceptions and returns 0, which declines the identity.

A context shared by many connections needs the connection inside its PSK
callback. OpenSSL passes the SSL object, and pyOpenSSL maps it back to its
Connection through `Connection._reverse_mapping`, as pyOpenSSL's own callbacks
do. That mapping is private to pyOpenSSL, so this module is also the only one
that reads it.
"""

import logging
from collections.abc import Callable, MutableMapping

from OpenSSL import SSL
from OpenSSL._util import ffi, lib

logger = logging.getLogger(__name__)

# The versions this module was written and tested against (pyproject.toml pins them).
PINNED_CRYPTOGRAPHY = "50.0.2"
PINNED_PYOPENSSL = "26.4.0"

REQUIRED_FUNCTIONS = (
    "SSL_CTX_set_psk_server_callback",
    "SSL_CTX_set_psk_client_callback",
    "SSL_CTX_use_psk_identity_hint",
    "SSL_OP_NO_QUERY_MTU",
    "DTLS_method",
)

# Returns the PSK for an identity, or None to decline it.
ServerPskCallback = Callable[[bytes], bytes | None]
# The same, given the pyOpenSSL Connection that runs the handshake.
ConnectionPskCallback = Callable[[SSL.Connection, bytes], bytes | None]
# Given the server's hint (or None), returns (identity, PSK), or None to give up.
ClientPskCallback = Callable[[bytes | None], tuple[bytes, bytes] | None]


class PskBindingError(RuntimeError):
    """cryptography's OpenSSL binding lacks a function this module needs."""


def missing_functions() -> list[str]:
    """Return the names in REQUIRED_FUNCTIONS that the binding does not expose."""
    return [name for name in REQUIRED_FUNCTIONS if not hasattr(lib, name)]


def _require_binding() -> None:
    missing = missing_functions()
    if missing:
        raise PskBindingError(
            f"cryptography's OpenSSL binding lacks {', '.join(missing)}; this project needs "
            f"cryptography=={PINNED_CRYPTOGRAPHY} and pyOpenSSL=={PINNED_PYOPENSSL}"
        )


def _keep_alive(context: SSL.Context, name: str, callback: object) -> None:
    # The Context keeps a reference to the cffi callback, so OpenSSL cannot call freed code.
    setattr(context, f"_msgin5g_{name}", callback)


def connection_lookup_available() -> bool:
    """Return whether pyOpenSSL still maps OpenSSL's SSL objects back to their Connection."""
    return isinstance(getattr(SSL.Connection, "_reverse_mapping", None), MutableMapping)


def set_psk_server_callback(context: SSL.Context, callback: ServerPskCallback) -> None:
    """Make OpenSSL ask `callback(identity)` for the PSK of a client's identity."""
    _install_server_callback(context, lambda ssl, identity: callback(identity))


def set_psk_server_connection_callback(context: SSL.Context, callback: ConnectionPskCallback) -> None:
    """Make OpenSSL ask `callback(connection, identity)` for the PSK of a client's identity.

    With this callback one context can serve many connections: the callback
    finds the state of its own connection with `connection.get_app_data()`.
    An SSL object without a live pyOpenSSL Connection gets no PSK.
    """
    if not connection_lookup_available():
        raise PskBindingError(
            f"pyOpenSSL no longer has Connection._reverse_mapping; this project needs "
            f"pyOpenSSL=={PINNED_PYOPENSSL}"
        )
    connections = SSL.Connection._reverse_mapping

    def lookup(ssl: object, identity: bytes) -> bytes | None:
        connection = connections.get(ssl)
        if connection is None:
            return None
        return callback(connection, identity)

    _install_server_callback(context, lookup)


def _install_server_callback(context: SSL.Context, lookup: Callable[[object, bytes], bytes | None]) -> None:
    _require_binding()

    @ffi.callback("unsigned int(SSL *, char *, unsigned char *, unsigned int)")
    def server_callback(ssl, identity, psk, max_psk_len):  # type: ignore[no-untyped-def]
        try:
            identity_octets = ffi.string(identity) if identity != ffi.NULL else b""
            key = lookup(ssl, identity_octets)
            if not key or len(key) > max_psk_len:
                return 0
            ffi.memmove(psk, key, len(key))
            return len(key)
        except Exception:
            logger.exception("the PSK server callback failed; the identity is declined")
            return 0

    lib.SSL_CTX_set_psk_server_callback(context._context, server_callback)
    _keep_alive(context, "psk_server_callback", server_callback)


def set_psk_client_callback(context: SSL.Context, callback: ClientPskCallback) -> None:
    """Make OpenSSL ask `callback(hint)` for the identity and PSK to send."""
    _require_binding()

    @ffi.callback("unsigned int(SSL *, char *, char *, unsigned int, unsigned char *, unsigned int)")
    def client_callback(ssl, hint, identity, max_identity_len, psk, max_psk_len):  # type: ignore[no-untyped-def]
        try:
            hint_octets = ffi.string(hint) if hint != ffi.NULL else None
            answer = callback(hint_octets)
            if answer is None:
                return 0
            identity_octets, key = answer
            # OpenSSL reads the identity as a C string: it needs room for the NUL.
            if len(identity_octets) >= max_identity_len or b"\0" in identity_octets:
                logger.error(
                    "PSK identity of %d octets does not fit OpenSSL's limit of %d",
                    len(identity_octets),
                    max_identity_len - 1,
                )
                return 0
            if not key or len(key) > max_psk_len:
                return 0
            ffi.memmove(identity, identity_octets + b"\0", len(identity_octets) + 1)
            ffi.memmove(psk, key, len(key))
            return len(key)
        except Exception:
            logger.exception("the PSK client callback failed; the handshake is abandoned")
            return 0

    lib.SSL_CTX_set_psk_client_callback(context._context, client_callback)
    _keep_alive(context, "psk_client_callback", client_callback)


def use_psk_identity_hint(context: SSL.Context, hint: bytes) -> None:
    """Send `hint` in the ServerKeyExchange of PSK cipher suites."""
    _require_binding()
    if lib.SSL_CTX_use_psk_identity_hint(context._context, hint) != 1:
        raise PskBindingError(f"OpenSSL rejected the PSK identity hint {hint!r}; use at most 128 ASCII octets")


def no_query_mtu_option() -> int:
    """Return SSL_OP_NO_QUERY_MTU: the MTU set by the application stays in force."""
    _require_binding()
    return int(lib.SSL_OP_NO_QUERY_MTU)

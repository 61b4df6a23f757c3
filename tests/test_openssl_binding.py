"""The pinned cryptography and pyOpenSSL still offer what the DTLS PSK profile uses."""

from importlib.metadata import version

from msgin5g.ua import openssl_psk

PINS = (
    f"this project pins cryptography=={openssl_psk.PINNED_CRYPTOGRAPHY} and "
    f"pyOpenSSL=={openssl_psk.PINNED_PYOPENSSL}"
)


def test_cryptography_pinned():
    installed = version("cryptography")

    assert installed == openssl_psk.PINNED_CRYPTOGRAPHY, (
        f"cryptography {installed} is installed, but {PINS}; run `make venv`, or check that "
        "the new release still exposes the PSK functions and update the pins together"
    )


def test_pyopenssl_pinned():
    installed = version("pyOpenSSL")

    assert installed == openssl_psk.PINNED_PYOPENSSL, (
        f"pyOpenSSL {installed} is installed, but {PINS}; run `make venv`, or check that "
        "the new release still exposes the PSK functions and update the pins together"
    )


def test_psk_functions_exposed():
    missing = openssl_psk.missing_functions()

    assert missing == [], (
        f"cryptography's OpenSSL binding (OpenSSL._util.lib) no longer exposes "
        f"{', '.join(missing)}; the PSK-DTLS 1.2 profile cannot work; {PINS}"
    )


def test_dtls_connection_methods():
    from OpenSSL import SSL

    needed = ("DTLSv1_listen", "DTLSv1_get_timeout", "DTLSv1_handle_timeout", "set_ciphertext_mtu")
    missing = [name for name in needed if not hasattr(SSL.Connection, name)]

    assert missing == [], f"pyOpenSSL's Connection lacks {', '.join(missing)}; {PINS}"


def test_connection_lookup_available():
    # The shared DTLS server context finds each connection's engine through this mapping.
    assert openssl_psk.connection_lookup_available(), (
        f"pyOpenSSL's Connection._reverse_mapping is gone, so the shared DTLS server context "
        f"cannot find its connections; {PINS}"
    )

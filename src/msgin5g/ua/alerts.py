"""TLS alert descriptions and the plaintext alert record (RFC 8446 clause 6)."""

import enum
import re
import ssl

# RFC 8446 clause 5.1: ContentType alert(21), and clause 6: level fatal(2).
CONTENT_TYPE_ALERT = 21
ALERT_LEVEL_FATAL = 2

# RFC 8446 clause 5.1: legacy_record_version is 0x0303 for every record except
# the first ClientHello.
LEGACY_RECORD_VERSION = 0x0303


class AlertDescription(enum.IntEnum):
    """Alert codes of RFC 8446 clause 6, named as in the RFC."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


def fatal_alert_record(description: AlertDescription) -> bytes:
    """Build a fatal alert as a plaintext record.

    RFC 8446 clause 5: before the server has sent its ServerHello no traffic keys
    exist, so an alert at that point travels unprotected.
    """
    header = bytes([CONTENT_TYPE_ALERT]) + LEGACY_RECORD_VERSION.to_bytes(2, "big")
    fragment = bytes([ALERT_LEVEL_FATAL, int(description)])
    return header + len(fragment).to_bytes(2, "big") + fragment


def alert_from_ssl_error(error: ssl.SSLError) -> AlertDescription | None:
    """Return the alert that an `ssl.SSLError` reports as received from the peer, if any.

    OpenSSL names a received alert `SSLV3_ALERT_<NAME>`, `TLSV1_ALERT_<NAME>` or
    `TLSV13_ALERT_<NAME>`. CPython 3.13 maps only some of these reason codes;
    for the others (unknown_psk_identity among them) `reason` is None and only the
    message carries the name, as in "tlsv1 alert unknown psk identity".
    """
    reason = getattr(error, "reason", None)
    if reason:
        match = _REASON_PATTERN.fullmatch(reason)
        if match is not None:
            return AlertDescription.__members__.get(match["name"].lower())

    match = _MESSAGE_PATTERN.search(str(error))
    if match is not None:
        return AlertDescription.__members__.get(match["name"].replace(" ", "_"))
    return None


_REASON_PATTERN = re.compile(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_(?P<name>[A-Z0-9_]+)")
_MESSAGE_PATTERN = re.compile(r"(?:sslv3|tlsv1|tlsv13) alert (?P<name>[a-z0-9 ]+?)(?: \(|$)")

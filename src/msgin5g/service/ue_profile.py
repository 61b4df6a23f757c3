"""The MSGin5G UE's configuration: USIM credentials, home network and service endpoints."""

import re
from dataclasses import dataclass, field
from typing import Any

from msgin5g.crypto.aka import check_mcc_mnc
from msgin5g.crypto.milenage import opc_from_op
from msgin5g.crypto.supi import supi_kdf_value

ROUTING_INDICATOR_PATTERN = re.compile(r"[0-9]{1,4}")
HEX_KEY_PATTERN = re.compile(r"[0-9A-Fa-f]{32}")
SECURITY_PROFILES = ("psk-tls1.3", "psk-tls1.2", "https-digest", "psk-dtls1.2")
TOP_LEVEL_KEYS = {
    "supi", "k", "op", "opc", "home_network", "routing_indicator", "ue_service_id", "ausf", "server",
}


class ProfileError(ValueError):
    """A UE configuration value is missing or invalid; the message names it and the fix."""


@dataclass(frozen=True)
class UeProfile:
    """Everything one UE needs to authenticate and register.

    `server_host` and `server_port` are where the MSGin5G Server listens;
    `server_fqdn` is its AF FQDN, which enters AF_ID and the TLS SNI.
    """

    supi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    mcc: str
    mnc: str
    routing_indicator: str
    ue_service_id: str
    ausf_uri: str
    server_host: str
    server_port: int
    server_fqdn: str
    # The Ua* security profile to use, and the CA file that verifies the
    # server certificate of the https-digest profile.
    security_profile: str = "psk-tls1.3"
    ca_file: str | None = None


def profile_from_mapping(document: dict[str, Any]) -> UeProfile:
    """Build a UeProfile from a YAML mapping, checking every field.

    Keys: supi, k, op or opc, home_network {mcc, mnc}, routing_indicator
    (default "0"), ue_service_id, ausf {uri}, server {host, port, fqdn,
    profile (default psk-tls1.3), ca_file (for https-digest)}.
    """
    if not isinstance(document, dict):
        raise ProfileError("the UE configuration must be a mapping of keys to values")

    supi = _required_text(document, "supi")
    try:
        supi_kdf_value(supi)
    except ValueError as error:
        raise ProfileError(f"invalid supi: {error}") from error

    k = _hex_key(document, "k")
    opc = _opc(document, k)
    mcc, mnc = _home_network(document)
    routing_indicator = str(document.get("routing_indicator", "0"))
    if not ROUTING_INDICATOR_PATTERN.fullmatch(routing_indicator):
        raise ProfileError(
            f"invalid routing_indicator {routing_indicator!r}: use 1 to 4 decimal digits"
        )

    _check_keys(document, TOP_LEVEL_KEYS, "")
    ausf = _section(document, "ausf")
    server = _section(document, "server")
    _check_keys(ausf, {"uri"}, "ausf.")
    _check_keys(server, {"host", "port", "fqdn", "profile", "ca_file"}, "server.")
    security_profile = str(server.get("profile", "psk-tls1.3"))
    if security_profile not in SECURITY_PROFILES:
        raise ProfileError(
            f"invalid server.profile {security_profile!r}: use one of {', '.join(SECURITY_PROFILES)}"
        )
    ca_file = server.get("ca_file")
    if security_profile == "https-digest" and not ca_file:
        raise ProfileError("missing server.ca_file: the https-digest profile verifies the server certificate with it")
    return UeProfile(
        supi=supi,
        k=k,
        opc=opc,
        mcc=mcc,
        mnc=mnc,
        routing_indicator=routing_indicator,
        ue_service_id=_required_text(document, "ue_service_id"),
        ausf_uri=_http_uri(_required_text(ausf, "uri", "ausf.uri")),
        server_host=_required_text(server, "host", "server.host"),
        server_port=_port(server),
        server_fqdn=_required_text(server, "fqdn", "server.fqdn"),
        security_profile=security_profile,
        ca_file=str(ca_file) if ca_file else None,
    )


def _check_keys(mapping: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        raise ProfileError(
            f"unknown key {prefix}{unknown[0]}: check its spelling; known keys are "
            + ", ".join(prefix + key for key in sorted(known))
        )


def _http_uri(uri: str) -> str:
    if not uri.startswith(("http://", "https://")):
        raise ProfileError(f"invalid ausf.uri {uri!r}: use http://HOST:PORT, for example http://127.0.0.1:8002")
    return uri


def _required_text(mapping: dict[str, Any], key: str, name: str | None = None) -> str:
    value = mapping.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ProfileError(f"missing {name or key}: set it in the UE configuration")
    if not isinstance(value, str):
        raise ProfileError(f"{name or key} must be a string, got {type(value).__name__}")
    return value.strip()


def _hex_key(mapping: dict[str, Any], key: str) -> bytes:
    text = _required_text(mapping, key)
    if not HEX_KEY_PATTERN.fullmatch(text):
        problem = (
            "contains characters other than 0-9 and a-f"
            if len(text) == 32
            else f"has {len(text)} characters"
        )
        raise ProfileError(f"invalid {key}: expected 32 hexadecimal digits (16 octets), but it {problem}")
    return bytes.fromhex(text)


def _opc(mapping: dict[str, Any], k: bytes) -> bytes:
    if ("op" in mapping) == ("opc" in mapping):
        raise ProfileError("set exactly one of op and opc in the UE configuration")
    if "opc" in mapping:
        return _hex_key(mapping, "opc")
    return opc_from_op(k, _hex_key(mapping, "op"))


def _home_network(mapping: dict[str, Any]) -> tuple[str, str]:
    home = _section(mapping, "home_network")
    _check_keys(home, {"mcc", "mnc"}, "home_network.")
    mcc = str(home.get("mcc", ""))
    mnc = str(home.get("mnc", ""))
    try:
        return check_mcc_mnc(mcc, mnc)
    except ValueError as error:
        raise ProfileError(f"invalid home_network: {error}") from error


def _section(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    value = mapping.get(key)
    if not isinstance(value, dict):
        raise ProfileError(f"missing section {key}: add it to the UE configuration")
    return value


def _port(server: dict[str, Any]) -> int:
    port = server.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ProfileError(f"invalid server.port {port!r}: use a TCP port from 1 to 65535")
    return port

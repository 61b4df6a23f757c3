"""The Gateway UE's configuration: its own UE profile, the local listener and the devices.

    ue: {...}                  # the keys of examples/ue.yaml: SUPI, K, OP, AUSF, server
    listener: {transport: dtls, host: 127.0.0.1, port: 5690}
    database: gateway.sqlite3  # the gateway's own SQLite file (per-device queues)
    bulk_wait_ms: 200          # NORMAL registrations collected into one BULK_REG
    poll_interval_seconds: 1.0 # how often the upstream inbox is fetched
    devices:
      - {device_id: meter-01, psk: <hex>, application_id: com.example.meter,
         ue_service_id: meter-01}

`transport: dtls` is CoAP over DTLS 1.2 with a PSK per device (PSK identity =
device_id). `transport: coap` is CoAP over UDP without security, for tests,
and only on a loopback address. A relative path (database, psk_file,
ue.server.ca_file) is taken from the folder of the configuration file.
"""

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml

from msgin5g.service.messages import schema_validator
from msgin5g.service.ue_profile import ProfileError, UeProfile, profile_from_mapping

TRANSPORTS = ("dtls", "coap")
MIN_PSK_OCTETS = 16
MAX_PSK_OCTETS = 64
MAX_ID_LENGTH = 128
MAX_DEVICES = 10_000
DEFAULT_BULK_WAIT_MS = 200
MAX_BULK_WAIT_MS = 60_000
DEFAULT_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 3600.0
DEFAULT_DATABASE = "gateway.sqlite3"
DEFAULT_PORT = 5690

# OpenSSL copies the PSK identity as a C string, so it must not contain NUL.
DEVICE_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
HEX_PATTERN = re.compile(r"[0-9A-Fa-f]+")

TOP_LEVEL_KEYS = {"ue", "listener", "database", "bulk_wait_ms", "poll_interval_seconds", "devices"}
LISTENER_KEYS = {"transport", "host", "port"}
DEVICE_KEYS = {"device_id", "psk", "psk_file", "application_id", "ue_service_id"}


class GatewayConfigError(ValueError):
    """A gateway configuration value is missing or invalid; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
    """One constrained UE behind the gateway and its local credentials."""

    device_id: str
    psk: bytes = dataclasses.field(repr=False)
    application_id: str
    ue_service_id: str


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    """Where the local CoAP listener binds, and with which transport."""

    transport: str
    host: str
    port: int

    @property
    def secured(self) -> bool:
        return self.transport == "dtls"


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """The whole gateway configuration, checked."""

    ue: UeProfile
    listener: ListenerConfig
    database: Path
    bulk_wait_ms: int
    poll_interval_seconds: float
    devices: tuple[DeviceConfig, ...]

    def device(self, device_id: str) -> DeviceConfig | None:
        """Return the device with this device ID, or None."""
        return next((device for device in self.devices if device.device_id == device_id), None)

    def device_for_service_id(self, ue_service_id: str) -> DeviceConfig | None:
        """Return the device with this UE service ID, or None."""
        return next((device for device in self.devices if device.ue_service_id == ue_service_id), None)

    def psk_table(self) -> dict[bytes, bytes]:
        """Return PSK identity (the device ID in ASCII) -> PSK, for the DTLS listener."""
        return {device.device_id.encode("ascii"): device.psk for device in self.devices}


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and check a gateway YAML file; raise GatewayConfigError naming the problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise GatewayConfigError(f"cannot read the gateway configuration {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise GatewayConfigError(f"the gateway configuration {path} is not valid YAML: {error}") from error
    return gateway_config_from_mapping(document, path.parent)


def gateway_config_from_mapping(document: Any, base_dir: Path) -> GatewayConfig:
    """Build a GatewayConfig from a YAML mapping; relative paths are taken from `base_dir`."""
    if not isinstance(document, dict):
        raise GatewayConfigError("the gateway configuration must be a mapping of keys to values")
    _check_keys(document, TOP_LEVEL_KEYS, "")

    ue = _ue_profile(document.get("ue"), base_dir)
    check_ue_service_id(ue.ue_service_id, "ue.ue_service_id")
    listener = _listener(document.get("listener"))
    devices = _devices(document.get("devices"), base_dir)
    own = next((device for device in devices if device.ue_service_id == ue.ue_service_id), None)
    if own is not None:
        raise GatewayConfigError(
            f"device {own.device_id!r} has the gateway's own UE service ID {ue.ue_service_id!r}: "
            "give the device a UE service ID of its own"
        )

    return GatewayConfig(
        ue=ue,
        listener=listener,
        database=_path(document.get("database", DEFAULT_DATABASE), "database", base_dir),
        bulk_wait_ms=_integer(document, "bulk_wait_ms", DEFAULT_BULK_WAIT_MS, 0, MAX_BULK_WAIT_MS),
        poll_interval_seconds=_seconds(document, "poll_interval_seconds", DEFAULT_POLL_INTERVAL),
        devices=devices,
    )


# Sections


def _ue_profile(section: Any, base_dir: Path) -> UeProfile:
    if not isinstance(section, dict):
        raise GatewayConfigError(
            "missing section ue: add the Gateway UE's own profile (the keys of examples/ue.yaml)"
        )
    section = dict(section)
    server = section.get("server")
    if isinstance(server, dict) and isinstance(server.get("ca_file"), str):
        section["server"] = {**server, "ca_file": str(base_dir / server["ca_file"])}
    try:
        return profile_from_mapping(section)
    except ProfileError as error:
        raise GatewayConfigError(f"in section ue: {error}") from error


def _listener(section: Any) -> ListenerConfig:
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise GatewayConfigError("listener must be a mapping {transport, host, port}")
    _check_keys(section, LISTENER_KEYS, "listener.")

    transport = section.get("transport", "dtls")
    if transport not in TRANSPORTS:
        raise GatewayConfigError(f"invalid listener.transport {transport!r}: use dtls or coap")
    host = section.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise GatewayConfigError(f"invalid listener.host {host!r}: use an IP address such as 127.0.0.1")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise GatewayConfigError(
            f"invalid listener.host {host!r}: use an IP address such as 127.0.0.1 or ::1"
        ) from None
    if transport == "coap" and not address.is_loopback:
        raise GatewayConfigError(
            f"listener.transport coap has no security, so it may bind only a loopback address, "
            f"not {host}; use 127.0.0.1 or ::1, or transport dtls"
        )
    port = section.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise GatewayConfigError(f"invalid listener.port {port!r}: use a UDP port from 0 (any free) to 65535")
    return ListenerConfig(transport=transport, host=host, port=port)


def _devices(section: Any, base_dir: Path) -> tuple[DeviceConfig, ...]:
    if not isinstance(section, list) or not section:
        raise GatewayConfigError("missing devices: list at least one {device_id, psk, application_id, ue_service_id}")
    if len(section) > MAX_DEVICES:
        raise GatewayConfigError(f"devices lists {len(section)} entries; at most {MAX_DEVICES} are allowed")

    devices = tuple(_device(entry, index, base_dir) for index, entry in enumerate(section))
    _require_unique(devices, "device_id")
    _require_unique(devices, "ue_service_id")
    return devices


def _device(entry: Any, index: int, base_dir: Path) -> DeviceConfig:
    where = f"devices[{index}]"
    if not isinstance(entry, dict):
        raise GatewayConfigError(f"{where} must be a mapping {{device_id, psk, application_id, ue_service_id}}")
    _check_keys(entry, DEVICE_KEYS, f"{where}.")

    device_id = _text(entry, "device_id", where)
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise GatewayConfigError(
            f"invalid {where}.device_id {device_id!r}: use 1 to {MAX_ID_LENGTH} printable ASCII "
            "characters without spaces (it is the DTLS PSK identity)"
        )
    ue_service_id = entry.get("ue_service_id")
    if not isinstance(ue_service_id, str):
        raise GatewayConfigError(f"missing {where}.ue_service_id: set it to the device's UE service ID")
    check_ue_service_id(ue_service_id, f"{where}.ue_service_id")
    return DeviceConfig(
        device_id=device_id,
        psk=_psk(entry, where, base_dir),
        application_id=_text(entry, "application_id", where),
        ue_service_id=ue_service_id,
    )


def check_ue_service_id(value: str, key: str) -> None:
    """Check a UE service ID against the rule of the server's REG schema; the error names `key` and the rule."""
    rule = schema_validator("reg.json").schema["$defs"]["UeServiceId"]
    low, high, pattern = rule["minLength"], rule["maxLength"], rule["pattern"]
    if low <= len(value) <= high and re.search(pattern, value):
        return
    excerpt = value if len(value) <= 40 else value[:37] + "..."
    raise GatewayConfigError(
        f"invalid {key} {excerpt!r}: a UE service ID is {low} to {high} printable ASCII characters "
        f"without spaces (pattern {pattern}, as the MSGin5G Server's REG schema requires)"
    )


def _psk(entry: dict[str, Any], where: str, base_dir: Path) -> bytes:
    if ("psk" in entry) == ("psk_file" in entry):
        raise GatewayConfigError(f"set exactly one of {where}.psk and {where}.psk_file")
    if "psk_file" in entry:
        path = _path(entry["psk_file"], f"{where}.psk_file", base_dir)
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise GatewayConfigError(f"cannot read {where}.psk_file {path}: {error}") from error
        return parse_psk_hex(text, f"{where}.psk_file")
    value = entry["psk"]
    if not isinstance(value, str):
        raise GatewayConfigError(f"{where}.psk must be a quoted string of hexadecimal digits")
    return parse_psk_hex(value.strip(), f"{where}.psk")


def parse_psk_hex(text: str, name: str) -> bytes:
    """Decode a PSK given in hexadecimal; the error names `name`, never the value."""
    if not HEX_PATTERN.fullmatch(text) or len(text) % 2:
        raise GatewayConfigError(
            f"invalid {name}: use an even number of hexadecimal digits (0-9, a-f)"
        )
    octets = len(text) // 2
    if not MIN_PSK_OCTETS <= octets <= MAX_PSK_OCTETS:
        raise GatewayConfigError(
            f"invalid {name}: the PSK has {octets} octets; use {MIN_PSK_OCTETS} to "
            f"{MAX_PSK_OCTETS} octets ({2 * MIN_PSK_OCTETS} to {2 * MAX_PSK_OCTETS} hexadecimal digits)"
        )
    return bytes.fromhex(text)


# Values


def _check_keys(mapping: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        raise GatewayConfigError(
            f"unknown key {prefix}{unknown[0]}: check its spelling; known keys are "
            + ", ".join(prefix + key for key in sorted(known))
        )


def _text(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise GatewayConfigError(f"missing {where}.{key}: set it to a non-empty string")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH:
        raise GatewayConfigError(f"{where}.{key} has {len(value)} characters; use at most {MAX_ID_LENGTH}")
    return value


def _require_unique(devices: tuple[DeviceConfig, ...], field: str) -> None:
    seen: set[str] = set()
    for device in devices:
        value = getattr(device, field)
        if value in seen:
            raise GatewayConfigError(f"duplicate {field} {value!r} in devices: every device needs its own")
        seen.add(value)


def _path(value: Any, name: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise GatewayConfigError(f"invalid {name} {value!r}: give a file path")
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def _integer(mapping: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = mapping.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise GatewayConfigError(f"invalid {key} {value!r}: use an integer from {low} to {high}")
    return value


def _seconds(mapping: dict[str, Any], key: str, default: float) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_POLL_INTERVAL:
        raise GatewayConfigError(
            f"invalid {key} {value!r}: use a number of seconds above 0 and at most {MAX_POLL_INTERVAL:g}"
        )
    return float(value)

"""The demo's plan: which subscribers exist, which UEs run, and what each must get.

A plan has N UEs that must register, one UE that asks for a UE service ID
associated with another UE (authorization must reject it), and one UE whose
USIM holds a wrong K (primary authentication must fail). It also has a Gateway
UE with its constrained devices (all associated with the gateway but one), and
one UE that stays offline until a message waits for it.
"""

import re
import secrets
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from msgin5g.crypto.aka import check_mcc_mnc
from msgin5g.crypto.milenage import opc_from_op

REGISTERED = "registered"
REJECTED = "rejected"
FAILED = "failed"

PROFILE_TLS13 = "psk-tls1.3"
# Every Ua* security profile of the server; the demo's UEs take them in turn.
SECURITY_PROFILES = ("psk-tls1.3", "psk-tls1.2", "https-digest", "psk-dtls1.2")

HEX_KEY_PATTERN = re.compile(r"[0-9A-Fa-f]{32}")
SQN_PATTERN = re.compile(r"[0-9A-Fa-f]{12}")

CONFIG_KEYS = {
    "home_network", "server_fqdn", "external_server_fqdn", "k_af_lifetime_seconds",
    "supi_prefix", "gpsi_prefix", "ue_service_id_format", "routing_indicator", "credentials",
    "gateway",
}
GATEWAY_KEYS = {"ue_service_id", "device_service_id_format", "devices", "application_id"}
MAX_GATEWAY_DEVICES = 100
DEVICE_PSK_OCTETS = 16


class PlanError(ValueError):
    """The demo configuration is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class PlannedUe:
    """One simulated UE, its USIM and the outcome the demo expects."""

    label: str
    supi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    ue_service_id: str
    expected: str
    expected_cause: str | None
    profile: str = PROFILE_TLS13
    # "aanf": the operator's MSGin5G Server, which requests K_AF from the AAnF directly;
    # "nef": the external MSGin5G Server, which goes through the NEF.
    via: str = "aanf"


@dataclass(frozen=True)
class PlannedDevice:
    """One constrained UE behind the Gateway UE, with its local-link PSK."""

    device_id: str
    ue_service_id: str
    application_id: str
    psk: bytes = field(repr=False)
    urgency: str
    expected: str
    expected_cause: str | None


@dataclass(frozen=True)
class PlannedGateway:
    """The Gateway UE: a UE of its own, and the devices it registers in bulk."""

    ue: PlannedUe
    devices: list[PlannedDevice]


@dataclass(frozen=True)
class DemoPlan:
    """Subscribers and associations to provision, and the UEs to run."""

    mcc: str
    mnc: str
    server_fqdn: str
    external_server_fqdn: str
    routing_indicator: str
    k_af_lifetime_seconds: int
    subscribers: list[dict[str, Any]] = field(repr=False)
    associations: list[dict[str, str]]
    ues: list[PlannedUe] = field(repr=False)
    gateway: PlannedGateway | None = field(default=None, repr=False)
    # Provisioned and associated, but registers only after a message waits for it.
    offline_ue: PlannedUe | None = field(default=None, repr=False)

    def provisioning_document(self) -> dict[str, Any]:
        """Return the document that `msgin5g provision` takes."""
        return {"subscribers": self.subscribers, "associations": self.associations}


def default_config_path() -> Path:
    return Path(str(resources.files("msgin5g.deployment") / "demo.yaml"))


def load_plan(config_path: Path, ue_count: int) -> DemoPlan:
    """Read the demo configuration and plan UE_COUNT registering UEs plus the two failures."""
    if ue_count < 1:
        raise PlanError(f"invalid number of UEs {ue_count}: use 1 or more")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanError(f"cannot read the demo configuration {config_path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise PlanError(f"the demo configuration {config_path} is not valid YAML: {error}") from error
    if not isinstance(config, dict):
        raise PlanError(f"{config_path} must hold a mapping of keys to values")

    unknown = sorted(str(key) for key in config if key not in CONFIG_KEYS)
    if unknown:
        raise PlanError(
            f"unknown key {unknown[0]} in {config_path}: check its spelling; known keys are "
            + ", ".join(sorted(CONFIG_KEYS))
        )
    return _build_plan(config, ue_count)


def _build_plan(config: dict[str, Any], ue_count: int) -> DemoPlan:
    credentials = _credentials(config)
    mcc, mnc = _home_network(config)
    builder = _PlanBuilder(
        supi_prefix=str(_required(config, "supi_prefix")),
        gpsi_prefix=str(config.get("gpsi_prefix", "msisdn-4917")),
        service_id_format=str(_required(config, "ue_service_id_format")),
        routing_indicator=str(config.get("routing_indicator", "0")),
        credentials=credentials,
    )

    for number in range(1, ue_count + 1):
        # Every fifth UE (or the last, with fewer than five) uses the external server.
        via_nef = number % 5 == 0 or (ue_count < 5 and number == ue_count)
        builder.add_ue(number, REGISTERED, None, via="nef" if via_nef else "aanf")
    builder.add_ue(ue_count + 1, REJECTED, "UE_SERVICE_ID_NOT_ASSOCIATED", claim_service_of=1)
    builder.add_ue(ue_count + 2, FAILED, "MAC_FAILURE", wrong_k=True)
    offline_ue = builder.add_ue(ue_count + 3, REGISTERED, None, listed=False)
    gateway = builder.add_gateway(ue_count + 4, _gateway_settings(config))

    return DemoPlan(
        mcc=mcc,
        mnc=mnc,
        server_fqdn=str(_required(config, "server_fqdn")),
        external_server_fqdn=str(_required(config, "external_server_fqdn")),
        routing_indicator=builder.routing_indicator,
        k_af_lifetime_seconds=_lifetime(config),
        subscribers=builder.subscribers,
        associations=builder.associations,
        ues=builder.ues,
        gateway=gateway,
        offline_ue=offline_ue,
    )


@dataclass
class _PlanBuilder:
    supi_prefix: str
    gpsi_prefix: str
    service_id_format: str
    routing_indicator: str
    credentials: list[dict[str, str]]
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    associations: list[dict[str, str]] = field(default_factory=list)
    ues: list[PlannedUe] = field(default_factory=list)

    def supi(self, number: int) -> str:
        return f"{self.supi_prefix}{number:010d}"

    def service_id(self, number: int) -> str:
        return self.service_id_format.format(n=number)

    def add_ue(
        self,
        number: int,
        expected: str,
        expected_cause: str | None,
        claim_service_of: int | None = None,
        wrong_k: bool = False,
        via: str = "aanf",
        listed: bool = True,
        ue_service_id: str | None = None,
    ) -> PlannedUe:
        # NOTE: with more UEs than test sets, the credentials repeat under
        # other SUPIs; that is harmless in a test network and keeps every K public.
        credential = self.credentials[(number - 1) % len(self.credentials)]
        k = bytes.fromhex(credential["k"])
        opc = opc_from_op(k, bytes.fromhex(credential["op"]))
        supi = self.supi(number)
        gpsi = f"{self.gpsi_prefix}{number:08d}"

        self.subscribers.append({
            "supi": supi,
            "gpsi": gpsi,
            "k": k.hex(),
            "opc": opc.hex(),
            "amf": "8000",
            "sqn": credential.get("sqn", "000000000000"),
            "akma_allowed": True,
            "routing_indicator": self.routing_indicator,
        })
        # Behind the NEF the server learns the GPSI, never the SUPI, so the CM
        # server associates that UE's service ID with its GPSI.
        ue_id = gpsi if via == "nef" else supi
        own_service_id = ue_service_id or self.service_id(number)
        self.associations.append({"ue_service_id": own_service_id, "ue_id": ue_id, "relation": "own"})

        usim_k = bytes([k[0] ^ 0x01]) + k[1:] if wrong_k else k
        requested = self.service_id(claim_service_of) if claim_service_of else own_service_id
        planned = PlannedUe(
            label=f"ue-{number:03d}",
            supi=supi,
            k=usim_k,
            opc=opc,
            ue_service_id=requested,
            expected=expected,
            expected_cause=expected_cause,
            profile=SECURITY_PROFILES[(number - 1) % len(SECURITY_PROFILES)] if listed else PROFILE_TLS13,
            via=via,
        )
        if listed:
            self.ues.append(planned)
        return planned

    def add_gateway(self, number: int, settings: dict[str, Any]) -> PlannedGateway:
        """Add the Gateway UE and its devices; the last device is not associated with it."""
        gateway_ue = self.add_ue(
            number, REGISTERED, None, listed=False, ue_service_id=settings["ue_service_id"]
        )
        devices = []
        count = settings["devices"]
        for index in range(1, count + 2):
            service_id = settings["device_service_id_format"].format(n=index)
            authorized = index <= count
            if authorized:
                self.associations.append(
                    {"ue_service_id": service_id, "ue_id": gateway_ue.supi, "relation": "gateway"}
                )
            devices.append(PlannedDevice(
                device_id=f"device-{index:03d}",
                ue_service_id=service_id,
                application_id=settings["application_id"],
                psk=secrets.token_bytes(DEVICE_PSK_OCTETS),
                # One device asks to be registered at once; the others are bulked.
                urgency="URGENT" if index == 1 else "NORMAL",
                expected=REGISTERED if authorized else REJECTED,
                expected_cause=None if authorized else "UE_SERVICE_ID_NOT_ASSOCIATED",
            ))
        return PlannedGateway(ue=gateway_ue, devices=devices)


def _credentials(config: dict[str, Any]) -> list[dict[str, str]]:
    credentials = config.get("credentials")
    if not isinstance(credentials, list) or not credentials:
        raise PlanError("credentials must be a non-empty list of {name, k, op, sqn} entries")
    for index, entry in enumerate(credentials):
        if not isinstance(entry, dict) or not {"k", "op"} <= entry.keys():
            raise PlanError(f"credentials[{index}] must have k and op (32 hexadecimal digits each)")
        for key in ("k", "op"):
            if not HEX_KEY_PATTERN.fullmatch(str(entry[key])):
                raise PlanError(f"invalid credentials[{index}].{key}: use 32 hexadecimal digits (16 octets)")
        if "sqn" in entry and not SQN_PATTERN.fullmatch(str(entry["sqn"])):
            raise PlanError(f"invalid credentials[{index}].sqn: use 12 hexadecimal digits (6 octets)")
    return credentials


def _gateway_settings(config: dict[str, Any]) -> dict[str, Any]:
    settings = config.get("gateway")
    if not isinstance(settings, dict):
        raise PlanError(
            "missing gateway in the demo configuration: add {ue_service_id, "
            "device_service_id_format, devices, application_id}"
        )
    unknown = sorted(str(key) for key in settings if key not in GATEWAY_KEYS)
    if unknown:
        raise PlanError(f"unknown key gateway.{unknown[0]}: known keys are " + ", ".join(sorted(GATEWAY_KEYS)))
    for key in sorted(GATEWAY_KEYS):
        _required(settings, key, f"gateway.{key}")

    devices = settings["devices"]
    if not isinstance(devices, int) or isinstance(devices, bool) or not 1 <= devices <= MAX_GATEWAY_DEVICES:
        raise PlanError(f"invalid gateway.devices {devices!r}: use a whole number from 1 to {MAX_GATEWAY_DEVICES}")
    if "{n" not in str(settings["device_service_id_format"]):
        raise PlanError(
            "invalid gateway.device_service_id_format: include {n} (or {n:03d}) so that each "
            "device gets its own UE service ID"
        )
    return {key: settings[key] if key == "devices" else str(settings[key]) for key in GATEWAY_KEYS}


def _lifetime(config: dict[str, Any]) -> int:
    value = config.get("k_af_lifetime_seconds", 3600)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise PlanError(f"invalid k_af_lifetime_seconds {value!r}: use a whole number of seconds above 0")
    return value


def _home_network(config: dict[str, Any]) -> tuple[str, str]:
    home = config.get("home_network")
    if not isinstance(home, dict):
        raise PlanError('missing home_network in the demo configuration: add {mcc: "001", mnc: "01"}')
    mcc, mnc = str(_required(home, "mcc", "home_network.mcc")), str(_required(home, "mnc", "home_network.mnc"))
    try:
        check_mcc_mnc(mcc, mnc)
    except ValueError as error:
        raise PlanError(f"invalid home_network: {error}") from error
    return mcc, mnc


def _required(mapping: dict[str, Any], key: str, name: str | None = None) -> Any:
    if key not in mapping:
        raise PlanError(f"missing {name or key} in the demo configuration")
    return mapping[key]

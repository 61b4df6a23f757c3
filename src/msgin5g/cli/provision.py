"""`msgin5g provision`: write subscribers and UE service ID associations into the database.

This is the operator's tool: it writes the UDM and CM tables of the
deployment's SQLite file directly, in one transaction, and writes nothing
when any entry is invalid. A provisioning file looks like this:

    subscribers:
      - supi: imsi-001010000000001
        gpsi: msisdn-491700000001          # optional
        k: "465b5ce8b199b49faa5f0a2ee238a6bc"
        opc: "cd63cb71954a9f4e48a5994e37a02baf"   # or op: "..." (one of the two)
        amf: "8000"                         # optional, default "8000"
        sqn: 0                              # optional: last SQN used, integer or 12 hex digits
        akma_allowed: true                  # optional, default false
        routing_indicator: "0"              # optional, default "0"
    associations:
      - ue_service_id: sensor-17
        ue_id: imsi-001010000000001         # a SUPI or a GPSI
        relation: gateway                   # optional: own (default) or gateway

An entry for a SUPI (or UE service ID) that is already in the database
replaces the stored one.

With `--store-config FILE` in place of `--database`, the entries go to the
store that the file's `store:` section selects, as the network functions
read it (an NF's own configuration file serves). For Redis and Redis Cluster
the document is validated first, so an invalid entry still writes nothing,
but then each entry is written on its own through the stores' `upsert`
methods: a connection lost midway leaves the earlier entries written, and
running the command again completes it. The relation `own` means that the UE service ID is the
UE's own; `gateway` means that it is a constrained UE which the Gateway UE with
that UE ID may represent.
"""

import argparse
import asyncio
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from msgin5g.cli.errors import UsageError
from msgin5g.crypto.milenage import opc_from_op
from msgin5g.nf.cm import store as cm_store
from msgin5g.nf.cm.redis_store import open_association_store
from msgin5g.nf.config import ConfigError, read_yaml
from msgin5g.nf.config import describe_errors as describe_config_errors
from msgin5g.nf.udm import store as udm_store
from msgin5g.nf.udm.redis_store import open_subscriber_store
from msgin5g.sbi.models.common import (
    GPSI_PATTERN,
    ROUTING_INDICATOR_PATTERN,
    SUPI_PATTERN,
    check_gpsi,
    check_identifier_text,
    check_supi,
)
from msgin5g.store.redis import CONNECT_ERRORS, StoreSelection
from msgin5g.store.sqlite import StoreError, connect, transaction

HEX_PATTERN = re.compile(r"[0-9A-Fa-f]+")
SQN_HEX_DIGITS = 12
# Entries written to Redis at the same time.
REDIS_WRITES_IN_FLIGHT = 64


class ProvisioningError(ValueError):
    """The provisioning document is invalid or cannot be written; nothing was written."""


class StoreUnavailableError(ProvisioningError):
    """A failure to open or write the target store, caused by its configuration or its server."""


def require_text(value: object, example: str) -> object:
    if not isinstance(value, str):
        raise ValueError(
            f"must be quoted text, e.g. {example} (YAML reads unquoted digits as a number)"
        )
    return value


def parse_hex(value: str, octets: int, example: str) -> bytes:
    if len(value) != 2 * octets or not HEX_PATTERN.fullmatch(value):
        raise ValueError(
            f"must be {2 * octets} hexadecimal digits ({octets} octets), e.g. {example}"
        )
    return bytes.fromhex(value)


class SubscriberEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    supi: str
    gpsi: str | None = None
    k: str
    op: str | None = None
    opc: str | None = None
    amf: str = "8000"
    sqn: int | str = 0
    akma_allowed: bool = False
    routing_indicator: str = "0"

    @field_validator("supi", "gpsi", mode="before")
    @classmethod
    def check_identifier_type(cls, value: object) -> object:
        return value if value is None else require_text(value, '"imsi-001010000000001"')

    @field_validator("k", "op", "opc", mode="before")
    @classmethod
    def check_key(cls, value: object) -> object:
        require_text(value, '"465b5ce8b199b49faa5f0a2ee238a6bc"')
        parse_hex(value, 16, '"465b5ce8b199b49faa5f0a2ee238a6bc"')
        return value

    @field_validator("amf", mode="before")
    @classmethod
    def check_amf(cls, value: object) -> object:
        require_text(value, '"8000"')
        parse_hex(value, 2, '"8000"')
        return value

    @field_validator("sqn", mode="before")
    @classmethod
    def check_sqn(cls, value: object) -> int:
        return parse_sqn(value)

    @field_validator("akma_allowed", mode="before")
    @classmethod
    def check_flag(cls, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    @field_validator("routing_indicator", mode="before")
    @classmethod
    def check_routing_indicator(cls, value: object) -> object:
        require_text(value, '"0"')
        if not ROUTING_INDICATOR_PATTERN.fullmatch(value):
            raise ValueError('must be 1 to 4 decimal digits, e.g. "0" or "0123"')
        return value

    @field_validator("supi")
    @classmethod
    def check_supi_form(cls, value: str) -> str:
        return check_supi(value)

    @field_validator("gpsi")
    @classmethod
    def check_gpsi_form(cls, value: str | None) -> str | None:
        return None if value is None else check_gpsi(value)

    @model_validator(mode="after")
    def check_one_operator_key(self) -> Self:
        if (self.op is None) == (self.opc is None):
            raise ValueError(
                "give exactly one of op and opc (the operator variant key, 32 hex digits)"
            )
        return self

    def to_subscriber(self) -> udm_store.Subscriber:
        k = bytes.fromhex(self.k)
        if self.opc is not None:
            opc = bytes.fromhex(self.opc)
        else:
            opc = opc_from_op(k, bytes.fromhex(self.op))
        return udm_store.Subscriber(
            supi=self.supi,
            gpsi=self.gpsi,
            k=k,
            opc=opc,
            amf=bytes.fromhex(self.amf),
            sqn=self.sqn,
            akma_allowed=self.akma_allowed,
            routing_indicator=self.routing_indicator,
        )


def parse_sqn(value: object) -> int:
    """Accept the last SQN used as an integer or as 12 hexadecimal digits."""
    if isinstance(value, bool):
        raise ValueError(
            'must be an integer or 12 hexadecimal digits in quotes, e.g. 0 or "000000000020"'
        )
    if isinstance(value, str):
        if len(value) != SQN_HEX_DIGITS or not HEX_PATTERN.fullmatch(value):
            raise ValueError('as text must be 12 hexadecimal digits, e.g. "000000000020"')
        value = int(value, 16)
    if not isinstance(value, int) or not 0 <= value <= udm_store.SQN_MAX:
        raise ValueError(f"must be an integer from 0 to {udm_store.SQN_MAX} (48 bits)")
    return value


class AssociationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ue_service_id: str
    ue_id: str
    relation: str = cm_store.RELATION_OWN

    @field_validator("ue_service_id", "ue_id", mode="before")
    @classmethod
    def check_text(cls, value: object) -> object:
        return require_text(value, '"sensor-17"')

    @field_validator("relation", mode="before")
    @classmethod
    def check_relation(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(
                f"must be {cm_store.RELATION_OWN!r} or {cm_store.RELATION_GATEWAY!r}, got {value!r}"
            )
        return cm_store.check_relation(value)

    @field_validator("ue_service_id")
    @classmethod
    def check_service_id(cls, value: str) -> str:
        return check_identifier_text(value)

    @field_validator("ue_id")
    @classmethod
    def check_ue_id(cls, value: str) -> str:
        if not (SUPI_PATTERN.fullmatch(value) or GPSI_PATTERN.fullmatch(value)):
            raise ValueError(
                "must be a SUPI (imsi-001010000000001) or a GPSI (msisdn-491700000001)"
            )
        return value

    def to_association(self) -> cm_store.Association:
        return cm_store.Association(
            ue_service_id=self.ue_service_id, ue_id=self.ue_id, relation=self.relation
        )


class ProvisioningDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subscribers: list[SubscriberEntry] = []
    associations: list[AssociationEntry] = []

    @model_validator(mode="after")
    def check_duplicates(self) -> Self:
        check_unique("subscribers", "supi", [entry.supi for entry in self.subscribers])
        check_unique(
            "associations", "ue_service_id", [entry.ue_service_id for entry in self.associations]
        )
        return self


def check_unique(section: str, key: str, values: list[str]) -> None:
    first_index: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first_index:
            raise ValueError(
                f"{section}[{index}] repeats the {key} of {section}[{first_index[value]}]; "
                "keep one entry per value"
            )
        first_index[value] = index


@dataclass(frozen=True)
class ProvisioningResult:
    subscribers: int
    associations: int


def provision(database_path: Path | str, document: dict[str, Any]) -> ProvisioningResult:
    """Validate `document` and write it into the database in one transaction.

    Raise ProvisioningError, writing nothing, when any entry is invalid or
    the database cannot be written.
    """
    parsed = parse_document(document)
    subscribers = [entry.to_subscriber() for entry in parsed.subscribers]
    associations = [entry.to_association() for entry in parsed.associations]

    try:
        connection = connect(database_path)
    except StoreError as error:
        raise StoreUnavailableError(str(error)) from None
    try:
        write(connection, subscribers, associations)
    except sqlite3.Error as error:
        raise StoreUnavailableError(
            f"cannot write database {database_path}: {error}; nothing was written"
        ) from None
    finally:
        connection.close()
    return ProvisioningResult(len(subscribers), len(associations))


def parse_document(document: object) -> ProvisioningDocument:
    if not isinstance(document, dict):
        raise ProvisioningError(
            "the provisioning document must be a mapping with 'subscribers' and "
            "'associations' lists"
        )
    try:
        return ProvisioningDocument.model_validate(document)
    except ValidationError as error:
        raise ProvisioningError(describe_errors(error)) from None


def describe_errors(error: ValidationError) -> str:
    """List each problem as 'subscribers[0].k: reason', without echoing any value."""
    lines = ["invalid provisioning document, nothing was written:"]
    for item in error.errors(include_url=False, include_input=False):
        lines.append(f"  {location_text(item['loc'])}: {reason_text(item)}")
    return "\n".join(lines)


def location_text(location: tuple) -> str:
    """Format a pydantic error location as e.g. subscribers[0].k."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text or "document"


def reason_text(item: dict[str, Any]) -> str:
    if item["type"] == "missing":
        return "is required but missing; add it"
    if item["type"] == "extra_forbidden":
        return "is not a known field; check its spelling"
    return str(item["msg"]).removeprefix("Value error, ")


def write(
    connection: sqlite3.Connection,
    subscribers: list[udm_store.Subscriber],
    associations: list[cm_store.Association],
) -> None:
    with transaction(connection):
        udm_store.create_tables(connection)
        cm_store.create_tables(connection)
        for subscriber in subscribers:
            udm_store.upsert_subscriber(connection, subscriber)
        for association in associations:
            cm_store.upsert_association(connection, association)


async def provision_store(selection: StoreSelection, document: dict[str, Any]) -> ProvisioningResult:
    """Validate `document`, then upsert its entries into the Redis store that `selection` names.

    Raise ProvisioningError, writing nothing, when any entry is invalid or
    Redis cannot be reached. When Redis fails midway, the error reports how
    many entries were written before.
    """
    parsed = parse_document(document)
    subscribers = [entry.to_subscriber() for entry in parsed.subscribers]
    associations = [entry.to_association() for entry in parsed.associations]
    where = selection.describe()

    try:
        subscriber_store = await open_subscriber_store(selection, None)
    except StoreError as error:
        raise StoreUnavailableError(f"{error}; nothing was written") from None
    try:
        association_store = await open_association_store(selection, None)
    except StoreError as error:
        await subscriber_store.close()
        raise StoreUnavailableError(f"{error}; nothing was written") from None

    written = 0
    try:
        for upsert, entries in ((subscriber_store.upsert, subscribers), (association_store.upsert, associations)):
            for start in range(0, len(entries), REDIS_WRITES_IN_FLIGHT):
                chunk = entries[start : start + REDIS_WRITES_IN_FLIGHT]
                await asyncio.gather(*(upsert(entry) for entry in chunk))
                written += len(chunk)
    except CONNECT_ERRORS as error:
        total = len(subscribers) + len(associations)
        raise StoreUnavailableError(
            f"cannot write to {where}: {error}; the first {written} of {total} entries were written "
            "(subscribers first, then associations). Each entry replaces the stored one, so run "
            "provision again once Redis answers"
        ) from None
    finally:
        await subscriber_store.close()
        await association_store.close()
    return ProvisioningResult(len(subscribers), len(associations))


def read_store_config(path: Path) -> tuple[StoreSelection, Path | None]:
    """Read the `store:` section of `path`; return it and, for SQLite, the file's database path."""
    try:
        document = read_yaml(path)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if "store" not in document and "database" not in document:
        raise UsageError(
            f"{path} has no store section and no database: add a store section, such as "
            "store: {backend: redis, url: redis://127.0.0.1:6379/0}, or pass --database FILE"
        )
    try:
        # As in the network functions, a file without a store section selects SQLite.
        selection = StoreSelection.model_validate(document.get("store", {}))
    except ValidationError as error:
        raise UsageError(describe_config_errors(Path(f"{path} (store)"), error)) from None

    if selection.uses_redis:
        return selection, None
    database = document.get("database")
    if not isinstance(database, str) or not database:
        raise UsageError(
            f"{path} selects the SQLite store but names no database file: add database: FILE "
            "to it, or pass --database FILE"
        )
    return selection, path.parent / database


def read_document(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {error}") from None


def run(args: argparse.Namespace) -> int:
    document = read_document(args.file)
    selection, database = StoreSelection(), args.database
    if args.store_config is not None:
        selection, database = read_store_config(args.store_config)

    try:
        if selection.uses_redis:
            result = asyncio.run(provision_store(selection, document))
            where = selection.describe()
        else:
            result = provision(database, document)
            where = str(database)
    except StoreUnavailableError as error:
        # The store configuration contains the wrong value. A --database error names its file itself.
        prefix = f"{args.store_config}: " if args.store_config is not None else ""
        raise UsageError(f"{prefix}{error}") from None
    except ProvisioningError as error:
        raise UsageError(f"{args.file}: {error}") from None
    print(
        f"provisioned {result.subscribers} subscriber(s) and {result.associations} "
        f"association(s) into {where}"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provision",
        help="write subscribers and UE service ID associations into the database or Redis",
        description=(
            "Write subscribers (UDM) and UE service ID associations (CM server) from a YAML "
            "file into the deployment's SQLite file, in one transaction, or into the Redis "
            "store that a configuration file selects. Nothing is written when any entry is "
            "invalid. An entry whose SUPI or UE service ID is already stored replaces the "
            "stored one."
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--database",
        type=Path,
        metavar="FILE",
        help="SQLite database file of the deployment (created if missing)",
    )
    target.add_argument(
        "--store-config",
        type=Path,
        metavar="FILE",
        help=(
            "YAML file with a store: section, such as the UDM's or CM server's configuration; "
            "writes into the Redis or Redis Cluster it selects (or into its database for SQLite)"
        ),
    )
    parser.add_argument(
        "--file",
        type=Path,
        required=True,
        metavar="FILE",
        help="provisioning YAML with 'subscribers' and 'associations' lists",
    )
    parser.set_defaults(handler=run)

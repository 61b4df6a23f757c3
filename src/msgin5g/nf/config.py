"""YAML configuration shared by the network functions.

Each function reads one YAML file (free5GC and Open5GS style), for example:

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3

`port: 0` lets the system pick a free port; `msgin5g serve` prints the real
URI. A relative `database` path is taken relative to the folder of the
configuration file. An optional `store:` section selects Redis instead of
the SQLite file (see `msgin5g.store.redis`). With Redis, `database` is
optional and unused, and a file that sets both gets a WARNING at start.
Unknown keys are errors, so that a typo does not pass silently.
"""

import logging
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from msgin5g.sbi.client import DEFAULT_TIMEOUT_SECONDS, check_base_uri
from msgin5g.sbi.server import DEFAULT_SERVER_STACK, ServerStack
from msgin5g.store.redis import StoreSelection, check_database_selected

logger = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration file is missing or wrong; the message names the key and the fix."""


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SbiBinding(ConfigModel):
    """Address and port on which the function listens for SBI requests, and the HTTP/2 server stack."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    server: ServerStack = DEFAULT_SERVER_STACK


class Peer(ConfigModel):
    """Another network function that this one calls."""

    uri: str
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=60)

    @field_validator("uri")
    @classmethod
    def check_uri(cls, value: str) -> str:
        return check_base_uri(value)


class NfConfig(ConfigModel):
    """The keys every network function has."""

    sbi: SbiBinding = SbiBinding()
    database: Path | None = None
    store: StoreSelection = StoreSelection()

    @model_validator(mode="wrap")
    @classmethod
    def name_missing_database(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        return require_database(cls.__name__, data, handler)

    @model_validator(mode="after")
    def check_database(self) -> Self:
        check_database_selected(self.database, self.store)
        return self


def require_database[M](model_name: str, data: Any, handler: ModelWrapValidatorHandler[M]) -> M:
    """Report a missing `database` as a missing key, next to the other errors, when the store is SQLite.

    A `store` section that is not a mapping or names an unknown backend gets only its
    own error, because the fix may be a Redis backend that needs no database.
    """
    if not isinstance(data, dict) or "database" in data or not selects_sqlite(data.get("store", {})):
        return handler(data)

    missing = InitErrorDetails(type="missing", loc=("database",), input=data)
    try:
        handler(data)
    except ValidationError as error:
        details = [
            InitErrorDetails(type=item["type"], loc=item["loc"], input=item["input"], ctx=item.get("ctx", {}))
            for item in error.errors()
        ]
        raise ValidationError.from_exception_data(model_name, [missing, *details]) from None
    raise ValidationError.from_exception_data(model_name, [missing])


def selects_sqlite(store: Any) -> bool:
    """Return True when the raw `store` value is valid enough to tell that it selects SQLite."""
    if isinstance(store, StoreSelection):
        return not store.uses_redis
    if not isinstance(store, dict):
        return False
    return store.get("backend", "sqlite") == "sqlite"


def load_config[C: BaseModel](path: Path | str, model: type[C]) -> C:
    """Read and validate a YAML configuration file; raise ConfigError when it is wrong.

    MODEL has a `database` path (or None), which is taken relative to the file's folder.
    """
    path = Path(path)
    document = read_yaml(path)

    try:
        config = model.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_errors(path, error)) from None

    if config.database is not None and not config.database.is_absolute():
        config = config.model_copy(update={"database": path.parent / config.database})
    warn_unused_database(path, config)
    return config


def warn_unused_database(path: Path, config: BaseModel) -> None:
    """Log a WARNING when `database` is set next to a Redis `store`, which leaves the SQLite file unused."""
    store = getattr(config, "store", None)
    if config.database is None or not isinstance(store, StoreSelection) or not store.uses_redis:
        return
    logger.warning(
        "%s sets both database and store: database %s is not used because store selects %s; "
        "remove database, or remove the store section to keep the state in SQLite",
        path, config.database, store.describe(),
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None

    if not isinstance(document, dict):
        raise ConfigError(f"{path} must contain a YAML mapping of keys to values, such as 'database: msgin5g.sqlite3'")
    return document


def describe_errors(path: Path, error: ValidationError) -> str:
    """List every wrong key as 'key a.b: reason', one per line."""
    lines = [f"invalid configuration in {path}:"]
    for item in error.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  key '{key}': {explain(item)}")
    return "\n".join(lines)


def explain(item: dict[str, Any]) -> str:
    if item["type"] == "missing":
        return "is required but missing; add it"
    if item["type"] == "extra_forbidden":
        return "is not a known key; check its spelling and indentation"
    return str(item["msg"]).removeprefix("Value error, ")

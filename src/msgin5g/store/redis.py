"""The Redis backend: store selection, connection factory and key layout.

Every network function and the MSGin5G Server read an optional `store:`
section; without it the embedded SQLite file (`database:`) stays the backend:

    store: {backend: sqlite}
    store: {backend: redis, url: "redis://127.0.0.1:6379/0"}
    store: {backend: redis-cluster, nodes: ["127.0.0.1:7000", "127.0.0.1:7001"]}

`key_prefix` (default `msgin5g`) starts every key, so that deployments can
share one Redis. Each key names one entity, with that entity's identifier
as the Redis Cluster hash tag, e.g. `msgin5g:aanf:ctx:{<A-KID>}`. Every Lua
script and every atomic command touches one key, so each runs on one cluster
node. A change that spans two keys (a record and its index) is two commands,
and the reading side checks the record against its index, so that a reader
never trusts an index entry alone.
"""

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError

from msgin5g.store.sqlite import StoreError

logger = logging.getLogger(__name__)

BACKENDS = ("sqlite", "redis", "redis-cluster")
REDIS_BACKENDS = ("redis", "redis-cluster")
URL_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_KEY_PREFIX = "msgin5g"

type RedisClient = Redis | RedisCluster


class StoreSelection(BaseModel):
    """The `store:` section: the backend that stores the function's state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = "sqlite"
    # Secret because it may carry a password (redis://user:password@host:port/db).
    url: SecretStr | None = None
    nodes: list[str] | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    # Seconds for connecting and for each command.
    timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("backend")
    @classmethod
    def check_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown store backend {value!r}: use one of {', '.join(BACKENDS)}")
        return value

    @field_validator("url")
    @classmethod
    def check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in URL_SCHEMES:
            raise ValueError(
                f"store URL {parts.scheme}://{parts.hostname or ''}... has scheme {parts.scheme!r}: use redis://host:port/db, "
                "rediss:// for TLS, or unix:///path/to/redis.sock"
            )
        return value

    @field_validator("nodes")
    @classmethod
    def check_nodes(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("store nodes is empty: list at least one cluster node as host:port")
        for value in values:
            parse_node(value)
        return values

    @field_validator("key_prefix")
    @classmethod
    def check_key_prefix(cls, value: str) -> str:
        if not value or any(character in value for character in "{}: \t\n"):
            raise ValueError(
                f"store key_prefix {value!r} is invalid: use a non-empty name without braces, "
                "colons or spaces, such as msgin5g"
            )
        return value

    @model_validator(mode="after")
    def check_backend_settings(self) -> Self:
        if self.backend == "redis" and (self.url is None or self.nodes is not None):
            raise ValueError(
                "store backend 'redis' needs url (e.g. redis://127.0.0.1:6379/0) and no nodes; "
                "for a cluster use backend: redis-cluster with nodes"
            )
        if self.backend == "redis-cluster" and (self.nodes is None or self.url is not None):
            raise ValueError(
                "store backend 'redis-cluster' needs nodes (e.g. ['127.0.0.1:7000']) and no url; "
                "for one Redis server use backend: redis with url"
            )
        if self.backend == "sqlite" and (self.url is not None or self.nodes is not None):
            raise ValueError(
                "store backend 'sqlite' takes no url or nodes (the file is the database key); "
                "set backend: redis or redis-cluster to use them"
            )
        return self

    @property
    def uses_redis(self) -> bool:
        return self.backend in REDIS_BACKENDS

    def describe(self) -> str:
        """Return where the data lives, for log lines and errors (no password)."""
        if self.backend == "redis-cluster":
            return f"Redis Cluster {','.join(self.nodes or [])}"
        if self.backend == "redis":
            parts = urlsplit(self.url.get_secret_value() if self.url is not None else "")
            return f"Redis {parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}"
        return "SQLite"


def parse_node(value: str) -> tuple[str, int]:
    """Split 'host:port' (or '[::1]:port'); raise ValueError naming the value."""
    host, separator, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"store node {value!r} is invalid: write it as host:port, e.g. 127.0.0.1:7000")
    return host, int(port_text)


def check_database_selected(database: Path | None, store: StoreSelection) -> None:
    """Raise ValueError when the SQLite backend is selected without a database file."""
    if database is None and not store.uses_redis:
        raise ValueError(
            "database is required when store.backend is sqlite (the default): add "
            "database: msgin5g.sqlite3, or select store: {backend: redis, url: redis://...}"
        )


class KeySpace:
    """Key names under one prefix: `<prefix>:<kind>:{<id>}` with the id as hash tag."""

    def __init__(self, prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self.prefix = prefix

    def key(self, kind: str, identifier: str, suffix: str = "") -> str:
        # NOTE: an identifier containing '}' would end the hash tag early; the key
        # stays unique, but it may land in another slot, which no script relies on.
        return f"{self.prefix}:{kind}:{{{identifier}}}{suffix}"


class RedisConnection:
    """A Redis or Redis Cluster client with the deployment's key space."""

    def __init__(self, client: RedisClient, keys: KeySpace, where: str) -> None:
        self.client = client
        self.keys = keys
        self.where = where

    @classmethod
    async def open(cls, selection: StoreSelection) -> "RedisConnection":
        """Connect and send PING; raise StoreError naming the address and the fix when that fails."""
        client = make_client(selection)
        where = selection.describe()
        try:
            if isinstance(client, RedisCluster):
                await client.initialize()
            await client.ping()
        except (RedisError, OSError) as error:
            await client.aclose()
            raise StoreError(
                f"cannot connect to {where}: {error}; check that redis-server runs there "
                "and that the store section names it"
            ) from None
        logger.info("connected to %s", where)
        return cls(client, KeySpace(selection.key_prefix), where)

    async def close(self) -> None:
        await self.client.aclose()


def make_client(selection: StoreSelection) -> RedisClient:
    """Create (without connecting) the client that `selection` describes."""
    timeouts = {"socket_timeout": selection.timeout, "socket_connect_timeout": selection.timeout}
    if selection.backend == "redis-cluster":
        nodes = [ClusterNode(*parse_node(node)) for node in selection.nodes or []]
        return RedisCluster(startup_nodes=nodes, **timeouts)
    if selection.backend == "redis":
        return Redis.from_url(selection.url.get_secret_value() if selection.url else "", **timeouts)
    raise StoreError(f"store backend {selection.backend!r} is not a Redis backend")


async def open_store[S](
    selection: StoreSelection,
    database: Path | None,
    *,
    sqlite: Callable[[Path], Awaitable[S]],
    redis: Callable[[RedisConnection], S],
) -> S:
    """Open the store that `selection` names: `sqlite(database)` or `redis(connection)`.

    The Redis store owns the connection and closes it in its `close()`.
    """
    if not selection.uses_redis:
        if database is None:
            raise StoreError("the SQLite backend needs a database file; set database in the configuration")
        return await sqlite(database)
    connection = await RedisConnection.open(selection)
    return redis(connection)


def text(value: bytes | str | None) -> str | None:
    """Decode a Redis reply field (UTF-8), keeping None."""
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8")

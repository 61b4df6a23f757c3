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
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisClusterUnreachableError, RedisError, ResponseError

from msgin5g.store.sqlite import StoreError

logger = logging.getLogger(__name__)

BACKENDS = ("sqlite", "redis", "redis-cluster")
REDIS_BACKENDS = ("redis", "redis-cluster")
URL_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_KEY_PREFIX = "msgin5g"
MAX_TIMEOUT_SECONDS = 60.0
NODES_EXAMPLE = '["127.0.0.1:7000"]'

# Errors of connecting and of the first commands. In redis-py 8.2,
# RedisClusterException and its subclasses (RedisClusterUnreachableError,
# SlotNotCoveredError) do not derive from RedisError. The cluster client raises
# them when no startup node returns the slot map.
CONNECT_ERRORS = (RedisError, RedisClusterException, OSError)

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
    timeout: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def check_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict | StoreSelection):
            return data
        # The value itself is not shown: `store: redis://user:password@host` would print the password.
        value_type = "null" if data is None else f"a {type(data).__name__} value"
        raise ValueError(
            f"store must be a mapping with a backend ({', '.join(BACKENDS)}), got {value_type}: "
            "write e.g. store: {backend: redis, url: redis://127.0.0.1:6379/0}"
        )

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
        url_start = f"{parts.scheme}://{parts.hostname or ''}..."
        if parts.scheme not in URL_SCHEMES:
            raise ValueError(
                f"store URL {url_start} has scheme {parts.scheme!r}: use redis://host:port/db, "
                "rediss:// for TLS, or unix:///path/to/redis.sock"
            )
        if parts.scheme != "unix":
            check_url_address(url_start, parts.netloc.rpartition("@")[2], parts.path)
        return value

    @field_validator("nodes", mode="before")
    @classmethod
    def check_nodes_type(cls, values: Any) -> Any:
        if values is not None and not isinstance(values, list):
            raise ValueError(
                f"store nodes must be a list of HOST:PORT strings, e.g. {NODES_EXAMPLE}, got {values!r}"
            )
        for value in values or []:
            if not isinstance(value, str):
                raise ValueError(
                    f"store node {value!r} is invalid: write it as a quoted HOST:PORT string, e.g. {NODES_EXAMPLE}"
                )
        return values

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

    @field_validator("timeout", mode="before")
    @classmethod
    def check_timeout(cls, value: Any) -> Any:
        # Checked before pydantic's own parsing, so that 'abc' and -1 get the same message.
        try:
            seconds = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            seconds = None
        if seconds is None or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"store timeout {value!r} is invalid: give seconds greater than 0 and at most "
                f"{MAX_TIMEOUT_SECONDS:g}, e.g. timeout: 5"
            )
        return value

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


def check_url_address(url_start: str, address: str, path: str) -> None:
    """Raise ValueError when a redis:// or rediss:// URL has a non-numeric port or database number."""
    port_text = address.rpartition("]")[2].partition(":")[2]
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"store URL {url_start} has port {port_text!r}: use a number from 1 to 65535")
    # redis-py ignores a database part that is not a number and uses database 0.
    database = path.removeprefix("/")
    if database and not database.isdigit():
        raise ValueError(f"store URL {url_start} has database {database!r}: end the URL with a number, e.g. /0")


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
        """Connect, send PING and check the cluster mode; raise StoreError naming the address and the fix."""
        client = make_client(selection)
        where = selection.describe()
        try:
            await check_server(client, selection)
        except StoreError:
            await client.aclose()
            raise
        except CONNECT_ERRORS as error:
            reason = await explain_connect_error(selection, error)
            await client.aclose()
            raise StoreError(f"cannot connect to {where}: {reason}") from None
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


async def check_server(client: RedisClient, selection: StoreSelection) -> None:
    """Load the cluster's slot map, send PING, and reject a cluster node behind `backend: redis`."""
    if isinstance(client, RedisCluster):
        await client.initialize()
    await client.ping()

    # A cluster node replies to PING but returns MOVED for keys of other nodes' slots, so reject it now.
    if isinstance(client, Redis) and await cluster_enabled(client) is True:
        parts = urlsplit(selection.url.get_secret_value() if selection.url is not None else "")
        node = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else "HOST:PORT"
        raise StoreError(
            f"cannot use {selection.describe()}: this Redis is a cluster node: use backend: "
            f'redis-cluster with nodes, e.g. store: {{backend: redis-cluster, nodes: ["{node}"]}}'
        )


async def cluster_enabled(client: Redis) -> bool | None:
    """Return whether INFO cluster reports cluster_enabled:1, or None when the server rejects INFO."""
    try:
        info = await client.info("cluster")
    except ResponseError:
        # NOTE: behind an ACL, a renamed INFO or a proxy the mode stays unknown, so a
        # cluster node behind `backend: redis` then fails later with MOVED replies.
        return None
    return str(info.get("cluster_enabled", 0)) == "1"


async def explain_connect_error(selection: StoreSelection, error: Exception) -> str:
    """Return why connecting failed and what to change, without the URL's password."""
    if selection.backend == "redis":
        return f"{error}; check that redis-server runs there and that the store section names it"

    # The cluster client wraps the last node's error in a generic "cannot be connected" one.
    detail = str(error.__cause__ or error)

    if isinstance(error, RedisClusterUnreachableError) or not isinstance(error, RedisClusterException):
        return (
            f"no node is reachable ({detail}); check that the Redis Cluster nodes run there "
            "and that nodes lists them"
        )
    single = await find_node_without_cluster_mode(selection)
    if single is not None:
        return (
            f"node {single} is reachable, but this node is not in cluster mode: use backend: redis with url, "
            f"e.g. store: {{backend: redis, url: redis://{single}/0}}"
        )
    return (
        f"{detail}; check that the nodes belong to one Redis Cluster whose CLUSTER INFO "
        "reports cluster_state:ok, and that nodes lists them"
    )


async def find_node_without_cluster_mode(selection: StoreSelection) -> str | None:
    """Return the first listed node whose INFO reports cluster_enabled:0, or None."""
    for node in selection.nodes or []:
        host, port = parse_node(node)
        timeouts = {"socket_timeout": selection.timeout, "socket_connect_timeout": selection.timeout}
        client = Redis(host=host, port=port, **timeouts)
        try:
            enabled = await cluster_enabled(client)
        except CONNECT_ERRORS:
            continue
        finally:
            await client.aclose()
        if enabled is False:
            return node
    return None


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

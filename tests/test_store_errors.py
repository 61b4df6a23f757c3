"""Errors of a wrong `store:` section: one line naming the value and the fix, never a traceback.

Covers connecting (a node in the wrong cluster mode, unreachable nodes), the
configuration checks, a database next to a Redis store, and the file that
`msgin5g provision --store-config` names in its errors.
"""

import asyncio
import logging
import sys
import textwrap
from urllib.parse import urlsplit

import pytest
import yaml

from redis_servers import RedisServers, free_port

from msgin5g.cli.main import main
from msgin5g.nf.aanf.config import load_aanf_config
from msgin5g.nf.config import ConfigError
from msgin5g.service.config import load_config as load_server_config
from msgin5g.store.redis import RedisConnection, StoreSelection
from msgin5g.store.sqlite import StoreError

EXIT_TIMEOUT_SECONDS = 30
SERVER = """\
fqdn: msgin5g.example.test
aanf: {uri: "http://127.0.0.1:8003"}
cm: {uri: "http://127.0.0.1:8004"}
"""
SUBSCRIBER = {
    "supi": "imsi-001010000000001",
    "k": "465b5ce8b199b49faa5f0a2ee238a6bc",
    "opc": "cd63cb71954a9f4e48a5994e37a02baf",
}


def single_node(servers: RedisServers) -> str:
    """Return the single (non-cluster) Redis as HOST:PORT."""
    parts = urlsplit(servers.single_url)
    return f"{parts.hostname}:{parts.port}"


def write(tmp_path, text: str, name: str = "aanf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def write_yaml(path, document: object):
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


async def open_error(selection: StoreSelection) -> str:
    with pytest.raises(StoreError) as caught:
        await RedisConnection.open(selection)
    return str(caught.value)


async def test_cluster_backend_on_single_redis(redis_servers):
    node = single_node(redis_servers)

    message = await open_error(StoreSelection(backend="redis-cluster", nodes=[node], timeout=2))

    assert message.startswith(f"cannot connect to Redis Cluster {node}:")
    assert "this node is not in cluster mode: use backend: redis with url" in message
    assert f"url: redis://{node}/0" in message


async def test_cluster_backend_unreachable_nodes():
    nodes = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]

    message = await open_error(StoreSelection(backend="redis-cluster", nodes=nodes, timeout=1))

    assert message.startswith(f"cannot connect to Redis Cluster {','.join(nodes)}:")
    assert "no node is reachable" in message
    assert "check that the Redis Cluster nodes run there" in message


async def test_redis_backend_on_cluster_node(redis_servers):
    node = redis_servers.cluster_nodes[0]

    message = await open_error(StoreSelection(backend="redis", url=f"redis://{node}/0", timeout=2))

    assert message.startswith(f"cannot use Redis redis://{node}/0:")
    assert "this Redis is a cluster node: use backend: redis-cluster with nodes" in message
    assert f'nodes: ["{node}"]' in message


async def test_redis_backend_on_single_redis_opens(redis_servers):
    connection = await RedisConnection.open(StoreSelection(backend="redis", url=redis_servers.single_url))
    try:
        assert await connection.client.ping() is True
    finally:
        await connection.close()


async def test_serve_cluster_backend_on_single_redis(redis_servers, tmp_path):
    node = single_node(redis_servers)
    config = write_yaml(tmp_path / "udm.yaml", {
        "sbi": {"host": "127.0.0.1", "port": 0},
        "store": {"backend": "redis-cluster", "nodes": [node], "timeout": 2},
    })

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "serve", "udm", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_SECONDS)
    message = stderr.decode()

    assert process.returncode == 1
    assert stdout == b""
    assert "Traceback" not in message
    assert f"udm stopped: cannot connect to Redis Cluster {node}:" in message
    assert "this node is not in cluster mode" in message


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{backend: redis-clustr, nodes: ['127.0.0.1:7000']}", "unknown store backend 'redis-clustr': use one of sqlite, redis, redis-cluster"),
        ("{backend: Redis, url: 'redis://127.0.0.1:6379/0'}", "unknown store backend 'Redis': use one of sqlite, redis, redis-cluster"),
        ("redis", "store must be a mapping with a backend (sqlite, redis, redis-cluster), got a str value"),
        ("null", "store must be a mapping with a backend (sqlite, redis, redis-cluster), got null"),
    ],
    ids=["typo", "capital", "string", "null"],
)
def test_bad_store_reported_alone(tmp_path, store, message):
    path = write(tmp_path, f"sbi: {{port: 0}}\nstore: {store}\n")

    with pytest.raises(ConfigError) as caught:
        load_aanf_config(path)
    lines = str(caught.value).splitlines()

    assert len(lines) == 2, lines
    assert message in lines[1]
    assert "database" not in str(caught.value)


def test_bad_store_in_server_reported_alone(tmp_path):
    path = write(tmp_path, SERVER + "store: {backend: redis-clustr, nodes: ['127.0.0.1:7000']}\n", "server.yaml")

    with pytest.raises(ConfigError) as caught:
        load_server_config(path)

    assert "unknown store backend 'redis-clustr'" in str(caught.value)
    assert "database" not in str(caught.value)


def test_string_store_hides_password(tmp_path):
    path = write(tmp_path, "store: 'redis://msgin5g:s3cret-pw@127.0.0.1:6379/0'\n")

    with pytest.raises(ConfigError) as caught:
        load_aanf_config(path)

    assert "store must be a mapping" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{backend: redis-cluster, nodes: 'a:1,b:2'}",
         "key 'store.nodes': store nodes must be a list of HOST:PORT strings, e.g. [\"127.0.0.1:7000\"]"),
        ("{backend: redis-cluster, nodes: [7000]}", "key 'store.nodes': store node 7000 is invalid"),
        ("{backend: redis, url: 'redis://127.0.0.1:6379/0', timeout: abc}",
         "key 'store.timeout': store timeout 'abc' is invalid: give seconds greater than 0 and at most 60"),
        ("{backend: redis, url: 'redis://127.0.0.1:6379/0', timeout: -1}",
         "key 'store.timeout': store timeout -1 is invalid: give seconds greater than 0 and at most 60"),
        ("{backend: redis, url: 'redis://127.0.0.1:6379/0', timeout: 61}", "store timeout 61 is invalid"),
        ("{backend: redis, url: 'redis://127.0.0.1:abc/0'}", "store URL redis://127.0.0.1... has port 'abc'"),
        ("{backend: redis, url: 'redis://127.0.0.1:6379/x'}", "store URL redis://127.0.0.1... has database 'x'"),
    ],
    ids=["nodes-string", "node-number", "timeout-text", "timeout-negative", "timeout-high", "url-port", "url-database"],
)
def test_bad_store_value_names_key_and_fix(tmp_path, store, message):
    path = write(tmp_path, f"store: {store}\n")

    with pytest.raises(ConfigError) as caught:
        load_aanf_config(path)

    assert message in str(caught.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://[::1]/3", "rediss://127.0.0.1", "unix:///run/redis.sock"])
def test_good_store_urls_accepted(url):
    assert StoreSelection(backend="redis", url=url, timeout="2.5").timeout == 2.5


def test_database_with_redis_store_warns(tmp_path, caplog):
    path = write(tmp_path, "database: db.sqlite3\nstore: {backend: redis, url: 'redis://u:s3cret-pw@127.0.0.1:6379/0'}\n")

    with caplog.at_level(logging.WARNING, logger="msgin5g.nf.config"):
        config = load_aanf_config(path)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]

    assert config.store.uses_redis
    assert len(warnings) == 1
    assert "sets both database and store" in warnings[0]
    assert "is not used because store selects Redis redis://127.0.0.1:6379/0" in warnings[0]
    assert "s3cret-pw" not in warnings[0]


def test_database_with_cluster_store_in_server_warns(tmp_path, caplog):
    text = SERVER + "database: db.sqlite3\nstore: {backend: redis-cluster, nodes: ['127.0.0.1:7000']}\n"

    with caplog.at_level(logging.WARNING, logger="msgin5g.nf.config"):
        load_server_config(write(tmp_path, text, "server.yaml"))

    assert "sets both database and store" in caplog.text


def test_database_with_sqlite_store_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="msgin5g.nf.config"):
        load_aanf_config(write(tmp_path, "database: db.sqlite3\nstore: {backend: sqlite}\n"))

    assert caplog.records == []


def test_provision_unreachable_names_store_config(tmp_path, capsys):
    config = write_yaml(tmp_path / "store.yaml", {
        "store": {"backend": "redis-cluster", "nodes": [f"127.0.0.1:{free_port()}"], "timeout": 1},
    })
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [SUBSCRIBER]})

    status = main(["provision", "--store-config", str(config), "--file", str(source)])
    error = capsys.readouterr().err

    assert status == 2
    assert error.startswith(f"msgin5g provision: error: {config}: cannot connect to Redis Cluster")
    assert "provisioning.yaml" not in error
    assert "nothing was written" in error


def test_provision_cluster_backend_on_single_redis(redis_servers, tmp_path, capsys):
    config = write_yaml(tmp_path / "store.yaml", {
        "store": {"backend": "redis-cluster", "nodes": [single_node(redis_servers)], "timeout": 2},
    })
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [SUBSCRIBER]})

    status = main(["provision", "--store-config", str(config), "--file", str(source)])
    error = capsys.readouterr().err

    assert status == 2
    assert error.startswith(f"msgin5g provision: error: {config}: cannot connect to Redis Cluster")
    assert "this node is not in cluster mode" in error
    assert "Traceback" not in error


def test_provision_bad_entry_names_provisioning_file(tmp_path, capsys):
    config = write_yaml(tmp_path / "store.yaml", {"store": {"backend": "redis", "url": "redis://127.0.0.1:1/0"}})
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [{**SUBSCRIBER, "k": "00"}]})

    status = main(["provision", "--store-config", str(config), "--file", str(source)])
    error = capsys.readouterr().err

    assert status == 2
    assert error.startswith(f"msgin5g provision: error: {source}: invalid provisioning document")

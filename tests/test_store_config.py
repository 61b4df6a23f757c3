"""The `store:` section of the network functions and the MSGin5G Server."""

import textwrap

import pytest

from msgin5g.nf.aanf.config import load_aanf_config
from msgin5g.nf.config import ConfigError
from msgin5g.service.config import load_config as load_server_config
from msgin5g.store.redis import StoreSelection, parse_node

SERVER = """\
fqdn: msgin5g.example.test
aanf: {uri: "http://127.0.0.1:8003"}
cm: {uri: "http://127.0.0.1:8004"}
"""


def write(tmp_path, text: str, name: str = "aanf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_without_store_sqlite_is_default(tmp_path):
    config = load_aanf_config(write(tmp_path, "database: db.sqlite3\n"))

    assert config.store.backend == "sqlite"
    assert config.store.uses_redis is False
    assert config.database == tmp_path / "db.sqlite3"


def test_redis_store_needs_no_database(tmp_path):
    config = load_aanf_config(write(tmp_path, "store: {backend: redis, url: 'redis://127.0.0.1:6379/0'}\n"))

    assert config.store.url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert config.database is None


def test_cluster_store_in_server_config(tmp_path):
    text = SERVER + "store: {backend: redis-cluster, nodes: ['127.0.0.1:7000', '[::1]:7001'], key_prefix: site1}\n"
    config = load_server_config(write(tmp_path, text, "server.yaml"))

    assert config.store.nodes == ["127.0.0.1:7000", "[::1]:7001"]
    assert config.store.key_prefix == "site1"
    assert config.database is None


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{backend: mongodb}", "unknown store backend 'mongodb': use one of sqlite, redis, redis-cluster"),
        ("{backend: redis}", "store backend 'redis' needs url"),
        ("{backend: redis, nodes: ['127.0.0.1:7000'], url: 'redis://h:1'}", "and no nodes"),
        ("{backend: redis-cluster}", "store backend 'redis-cluster' needs nodes"),
        ("{backend: redis-cluster, nodes: []}", "store nodes is empty"),
        ("{backend: redis-cluster, nodes: ['127.0.0.1']}", "store node '127.0.0.1' is invalid: write it as host:port"),
        ("{backend: redis-cluster, nodes: ['h:99999']}", "store node 'h:99999' is invalid"),
        ("{backend: redis, url: 'http://127.0.0.1:6379'}", "store URL http://127.0.0.1... has scheme 'http': use redis://host:port/db"),
        ("{backend: sqlite, url: 'redis://h:1'}", "store backend 'sqlite' takes no url or nodes"),
        ("{backend: redis, url: 'redis://h:1', key_prefix: 'a{b}'}", "store key_prefix 'a{b}' is invalid"),
        ("{backend: redis, url: 'redis://h:1', timeout: 0}", "key 'store.timeout'"),
        ("{backend: redis, url: 'redis://h:1', pasword: x}", "key 'store.pasword': is not a known key"),
    ],
)
def test_invalid_store_names_value_and_fix(tmp_path, store, message):
    path = write(tmp_path, f"database: db.sqlite3\nstore: {store}\n")

    with pytest.raises(ConfigError) as caught:
        load_aanf_config(path)

    assert message in str(caught.value)


def test_sqlite_without_database_is_missing_key(tmp_path):
    with pytest.raises(ConfigError, match="key 'database': is required but missing"):
        load_aanf_config(write(tmp_path, "store: {backend: sqlite}\n"))


def test_server_without_database_is_missing_key(tmp_path):
    with pytest.raises(ConfigError, match="key 'database': is required but missing"):
        load_server_config(write(tmp_path, SERVER, "server.yaml"))


def test_null_database_with_sqlite_names_fix(tmp_path):
    with pytest.raises(ConfigError, match="database is required when store.backend is sqlite"):
        load_aanf_config(write(tmp_path, "database: null\n"))


def test_describe_hides_password():
    selection = StoreSelection(backend="redis", url="redis://msgin5g:secret-password@127.0.0.1:6379/0")

    assert "secret-password" not in selection.describe()
    assert "secret-password" not in repr(selection)
    assert selection.describe() == "Redis redis://127.0.0.1:6379/0"


def test_parse_node_ipv6():
    assert parse_node("[::1]:7000") == ("::1", 7000)

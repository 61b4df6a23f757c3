"""`msgin5g provision --store-config`: provisioning into SQLite, single Redis and Redis Cluster.

The store configuration is written the way an NF's own file looks (sbi and
store sections), and the test reads the entries back through the stores
that the UDM and the CM server use.
"""

import asyncio
from pathlib import Path

import pytest
import yaml

from redis_servers import free_port

from msgin5g.cli.main import main
from msgin5g.nf.cm.redis_store import open_association_store
from msgin5g.nf.udm.redis_store import open_subscriber_store
from msgin5g.nf.udm.store import Subscriber
from msgin5g.store.redis import StoreSelection

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
SUPI = "imsi-001010000000001"
GPSI = "msisdn-491700000001"


def subscriber(**changes) -> dict:
    entry = {"supi": SUPI, "gpsi": GPSI, "k": K, "opc": OPC, "sqn": 32, "akma_allowed": True}
    entry.update(changes)
    return entry


def store_section(selection: StoreSelection) -> dict:
    if selection.backend == "redis":
        return {"backend": "redis", "url": selection.url.get_secret_value(), "key_prefix": selection.key_prefix}
    if selection.backend == "redis-cluster":
        return {"backend": "redis-cluster", "nodes": selection.nodes, "key_prefix": selection.key_prefix}
    return {"backend": "sqlite"}


def write_yaml(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def nf_config(tmp_path: Path, selection: StoreSelection) -> Path:
    """Write a UDM-style configuration file with the store section of `selection`."""
    document = {"sbi": {"host": "127.0.0.1", "port": 0}, "store": store_section(selection)}
    if not selection.uses_redis:
        document["database"] = "nf.sqlite3"
    return write_yaml(tmp_path / "udm.yaml", document)


def provision(config: Path, source: Path) -> int:
    return main(["provision", "--store-config", str(config), "--file", str(source)])


def database_of(selection: StoreSelection, tmp_path: Path) -> Path | None:
    return None if selection.uses_redis else tmp_path / "nf.sqlite3"


async def read_back(selection: StoreSelection, database: Path | None) -> tuple[Subscriber | None, dict]:
    """Return the subscriber of SUPI, and the UE service IDs associated with SUPI and with GPSI."""
    subscribers = await open_subscriber_store(selection, database)
    associations = await open_association_store(selection, database)
    try:
        found = await subscribers.find(SUPI)
        by_ue = {ue_id: [item.ue_service_id for item in await associations.find_by_ue_id(ue_id)]
                 for ue_id in (SUPI, GPSI)}
    finally:
        await subscribers.close()
        await associations.close()
    return found, by_ue


def test_store_config_provisions_each_backend(store_selection, tmp_path, capsys):
    config = nf_config(tmp_path, store_selection)
    source = write_yaml(tmp_path / "provisioning.yaml", {
        "subscribers": [subscriber()],
        "associations": [{"ue_service_id": "sensor-17", "ue_id": SUPI}, {"ue_service_id": "meter-3", "ue_id": SUPI}],
    })

    status = provision(config, source)
    found, by_ue = asyncio.run(read_back(store_selection, database_of(store_selection, tmp_path)))

    assert status == 0
    assert "provisioned 1 subscriber(s) and 2 association(s)" in capsys.readouterr().out
    assert found is not None
    assert (found.gpsi, found.k, found.opc, found.sqn, found.akma_allowed) == (
        GPSI, bytes.fromhex(K), bytes.fromhex(OPC), 32, True
    )
    assert sorted(by_ue[SUPI]) == ["meter-3", "sensor-17"]


def test_store_config_reprovisioning_replaces_entries(store_selection, tmp_path):
    config = nf_config(tmp_path, store_selection)
    first = write_yaml(tmp_path / "first.yaml", {
        "subscribers": [subscriber()], "associations": [{"ue_service_id": "sensor-17", "ue_id": SUPI}],
    })
    second = write_yaml(tmp_path / "second.yaml", {
        "subscribers": [subscriber(sqn=640, akma_allowed=False, gpsi=None)],
        "associations": [{"ue_service_id": "sensor-17", "ue_id": GPSI, "relation": "gateway"}],
    })

    statuses = provision(config, first), provision(config, second)
    found, by_ue = asyncio.run(read_back(store_selection, database_of(store_selection, tmp_path)))

    assert statuses == (0, 0)
    assert (found.sqn, found.akma_allowed, found.gpsi) == (640, False, None)
    assert by_ue == {SUPI: [], GPSI: ["sensor-17"]}


def test_store_config_invalid_entry_writes_nothing(store_selection, tmp_path, capsys):
    config = nf_config(tmp_path, store_selection)
    source = write_yaml(tmp_path / "provisioning.yaml", {
        "subscribers": [subscriber(), subscriber(supi="imsi-001010000000002", k="00" * 15)],
    })

    status = provision(config, source)
    found, _ = asyncio.run(read_back(store_selection, database_of(store_selection, tmp_path)))

    assert status == 2
    assert "subscribers[1].k: must be 32 hexadecimal digits" in capsys.readouterr().err
    assert found is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("store: [redis\n", "is not valid YAML"),
        ("- store\n", "must contain a YAML mapping"),
        ("sbi: {port: 0}\n", "has no store section and no database"),
        ("store: {backend: memcached}\n", "key 'backend': unknown store backend 'memcached'"),
        ("store: {backend: redis}\n", "store backend 'redis' needs url"),
        ("store: {backend: redis-cluster, nodes: ['127.0.0.1']}\n", "store node '127.0.0.1' is invalid"),
        ("store: {backend: sqlite}\n", "selects the SQLite store but names no database file"),
    ],
    ids=["yaml", "not-mapping", "no-store", "backend", "no-url", "bad-node", "sqlite-no-database"],
)
def test_bad_store_config_is_explained(tmp_path, capsys, content, expected):
    config = tmp_path / "store.yaml"
    config.write_text(content, encoding="utf-8")
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [subscriber()]})

    status = provision(config, source)

    assert status == 2
    assert expected in capsys.readouterr().err


def test_config_without_store_section_writes_its_database(tmp_path):
    config = write_yaml(tmp_path / "cm.yaml", {"sbi": {"port": 0}, "database": "nf.sqlite3"})
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [subscriber()]})

    status = provision(config, source)
    found, _ = asyncio.run(read_back(StoreSelection(), tmp_path / "nf.sqlite3"))

    assert status == 0
    assert found is not None


def test_missing_store_config_is_explained(tmp_path, capsys):
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [subscriber()]})

    status = provision(tmp_path / "absent.yaml", source)

    assert status == 2
    assert "cannot read configuration file" in capsys.readouterr().err


def test_unreachable_redis_writes_nothing(tmp_path, capsys):
    url = f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0"
    config = write_yaml(tmp_path / "store.yaml", {"store": {"backend": "redis", "url": url, "timeout": 1}})
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [subscriber()]})

    status = provision(config, source)
    error = capsys.readouterr().err

    assert status == 2
    assert "cannot connect to Redis redis://127.0.0.1:" in error
    assert "nothing was written" in error
    assert "s3cret-pw" not in error


def test_database_and_store_config_exclude_each_other(tmp_path, capsys):
    source = write_yaml(tmp_path / "provisioning.yaml", {"subscribers": [subscriber()]})

    with pytest.raises(SystemExit) as exit_info:
        main(["provision", "--database", str(tmp_path / "db"), "--store-config", str(tmp_path / "s.yaml"),
              "--file", str(source)])

    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err

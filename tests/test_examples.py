"""The files in examples/ load, and fit together as the walkthrough in examples/README.md uses them."""

from pathlib import Path

import pytest
import yaml

from msgin5g.cli.provision import parse_document, provision
from msgin5g.gateway.config import load_gateway_config
from msgin5g.nf.cf.config import load_cf_config
from msgin5g.nf.cm.store import SqliteAssociationStore
from msgin5g.service.ue_profile import profile_from_mapping

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def read(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def provisioning():
    return parse_document(read("provisioning.yaml"))


def associations_of(provisioning) -> dict[str, tuple[str, str]]:
    return {entry.ue_service_id: (entry.ue_id, entry.relation) for entry in provisioning.associations}


def test_ues_and_gateway_have_distinct_provisioned_supis(provisioning):
    supis = {subscriber.supi for subscriber in provisioning.subscribers}
    ue, ue_b = profile_from_mapping(read("ue.yaml")), profile_from_mapping(read("ue-b.yaml"))
    gateway = load_gateway_config(EXAMPLES / "gateway.yaml")

    assert len({ue.supi, ue_b.supi, gateway.ue.supi}) == 3
    assert {ue.supi, ue_b.supi, gateway.ue.supi} <= supis


def test_ue_service_ids_own_associations(provisioning):
    associations = associations_of(provisioning)
    gateway = load_gateway_config(EXAMPLES / "gateway.yaml")

    for name in ("ue.yaml", "ue-b.yaml"):
        profile = profile_from_mapping(read(name))
        assert associations[profile.ue_service_id] == (profile.supi, "own"), name
    assert associations[gateway.ue.ue_service_id] == (gateway.ue.supi, "own")


def test_gateway_devices_associated_with_gateway(provisioning):
    associations = associations_of(provisioning)
    gateway = load_gateway_config(EXAMPLES / "gateway.yaml")

    assert len(gateway.devices) == 10
    for device in gateway.devices:
        assert associations[device.ue_service_id] == (gateway.ue.supi, "gateway"), device.device_id


def test_configuration_function_matches_provisioning(provisioning):
    config = load_cf_config(EXAMPLES / "cf.yaml")
    served = {entry.ue_service_id: (entry.ue_id, entry.relation) for entry in config.associations}

    assert served == associations_of(provisioning)


async def test_provisioning_file_writes_cm_associations(tmp_path):
    database = tmp_path / "msgin5g.sqlite3"
    provision(database, read("provisioning.yaml"))
    store = await SqliteAssociationStore.open(database)
    try:
        gateway_devices = await store.find_by_ue_id("imsi-001010000000003")
    finally:
        await store.close()

    assert sorted(a.ue_service_id for a in gateway_devices if a.relation == "gateway") == [
        f"meter-{n:02d}" for n in range(1, 11)
    ]

"""The demo plan: what it provisions and what it expects, and how it reports bad configuration."""

import pytest
import yaml

from msgin5g.deployment.plan import FAILED, REGISTERED, REJECTED, PlanError, default_config_path, load_plan


def test_plan_adds_two_failing_ues():
    plan = load_plan(default_config_path(), 3)
    expected = [ue.expected for ue in plan.ues]

    assert expected == [REGISTERED, REGISTERED, REGISTERED, REJECTED, FAILED]
    # The five listed UEs, the offline UE and the Gateway UE.
    assert len(plan.subscribers) == 7
    assert len({subscriber["supi"] for subscriber in plan.subscribers}) == 7


def test_plan_adds_gateway_with_one_unassociated_device():
    plan = load_plan(default_config_path(), 3)
    gateway = plan.gateway
    gateway_associations = [a for a in plan.associations if a.get("relation") == "gateway"]

    assert len(gateway.devices) == 11
    assert {a["ue_id"] for a in gateway_associations} == {gateway.ue.supi}
    assert sorted(a["ue_service_id"] for a in gateway_associations) == [d.ue_service_id for d in gateway.devices[:10]]
    assert gateway.devices[-1].expected == REJECTED
    assert [d.urgency for d in gateway.devices].count("URGENT") == 1
    assert len({d.psk for d in gateway.devices}) == 11
    assert gateway.devices[0].psk.hex() not in repr(gateway.devices[0])


def test_offline_ue_is_provisioned_but_not_listed():
    plan = load_plan(default_config_path(), 3)

    assert plan.offline_ue not in plan.ues
    assert {"ue_service_id": plan.offline_ue.ue_service_id, "ue_id": plan.offline_ue.supi, "relation": "own"} in plan.associations


def test_rejected_ue_claims_service_of_another():
    plan = load_plan(default_config_path(), 3)
    rejected = plan.ues[3]
    own_association = next(a for a in plan.associations if a["ue_id"] == rejected.supi)

    assert rejected.ue_service_id == plan.ues[0].ue_service_id
    assert own_association["ue_service_id"] != rejected.ue_service_id


def test_failing_ue_holds_other_k():
    plan = load_plan(default_config_path(), 3)
    failing = plan.ues[4]
    provisioned = next(s for s in plan.subscribers if s["supi"] == failing.supi)

    assert failing.k.hex() != provisioned["k"]


def test_plan_uses_published_test_sets():
    plan = load_plan(default_config_path(), 20)

    assert plan.subscribers[0]["k"] == "465b5ce8b199b49faa5f0a2ee238a6bc"
    assert len({subscriber["k"] for subscriber in plan.subscribers[:20]}) == 20


def write_config(tmp_path, **changes):
    config = yaml.safe_load(default_config_path().read_text())
    config.update(changes)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"server_fdqn": "x"}, "unknown key server_fdqn"),
        ({"k_af_lifetime_seconds": "soon"}, "invalid k_af_lifetime_seconds"),
        ({"home_network": {"mcc": "1", "mnc": "01"}}, "invalid home_network"),
        ({"credentials": [{"k": "00", "op": "00"}]}, "invalid credentials[0].k"),
        ({"credentials": []}, "credentials must be a non-empty list"),
        ({"gateway": None}, "missing gateway"),
        ({"gateway": {"ue_service_id": "gw", "device_service_id_format": "d-{n}", "devices": 0, "application_id": "a"}}, "invalid gateway.devices 0"),
        ({"gateway": {"ue_service_id": "gw", "device_service_id_format": "dev", "devices": 2, "application_id": "a"}}, "invalid gateway.device_service_id_format"),
        ({"gateway": {"ue_service_id": "gw", "device_service_id_format": "d-{n}", "devices": 2}}, "missing gateway.application_id"),
    ],
)
def test_bad_config_names_the_key(tmp_path, changes, message):
    with pytest.raises(PlanError) as raised:
        load_plan(write_config(tmp_path, **changes), 2)

    assert message in str(raised.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(PlanError) as raised:
        load_plan(tmp_path / "absent.yaml", 2)

    assert "No such file or directory" in str(raised.value)

"""The gateway YAML configuration: checks, relative paths and secrecy of the PSKs."""

from pathlib import Path

import pytest
import yaml

from gateway_fakes import device_psk, gateway_document
from msgin5g.gateway.config import GatewayConfigError, gateway_config_from_mapping, load_gateway_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gateway.yaml"


def build(tmp_path, **changes):
    document = gateway_document(tmp_path)
    document.update(changes)
    return gateway_config_from_mapping(document, tmp_path)


def with_device(tmp_path, index: int, **changes):
    document = gateway_document(tmp_path)
    document["devices"][index].update(changes)
    return document


def test_valid_config_loads(tmp_path):
    config = build(tmp_path)

    assert config.listener.transport == "dtls"
    assert [device.device_id for device in config.devices] == ["dev-01", "dev-02", "dev-03"]
    assert config.device("dev-02").psk == device_psk(2)
    assert config.device_for_service_id("meter-03").device_id == "dev-03"
    assert config.psk_table()[b"dev-01"] == device_psk(1)


def test_psk_never_in_repr(tmp_path):
    config = build(tmp_path)

    assert device_psk(1).hex() not in repr(config)
    assert repr(device_psk(1)) not in repr(config)


@pytest.mark.parametrize("psk, fragment", [
    ("ab" * 15, "15 octets"),
    ("ab" * 65, "65 octets"),
    ("zz" * 16, "hexadecimal"),
    ("abc", "even number"),
])
def test_bad_psk_rejected(tmp_path, psk, fragment):
    document = with_device(tmp_path, 0, psk=psk)

    with pytest.raises(GatewayConfigError, match=fragment) as raised:
        gateway_config_from_mapping(document, tmp_path)

    assert "devices[0].psk" in str(raised.value)
    assert psk not in str(raised.value)


def test_psk_limits_accepted(tmp_path):
    short = gateway_config_from_mapping(with_device(tmp_path, 0, psk="00" * 16), tmp_path)
    long = gateway_config_from_mapping(with_device(tmp_path, 0, psk="00" * 64), tmp_path)

    assert len(short.devices[0].psk) == 16
    assert len(long.devices[0].psk) == 64


def test_duplicate_device_id_rejected(tmp_path):
    document = with_device(tmp_path, 1, device_id="dev-01")

    with pytest.raises(GatewayConfigError, match="duplicate device_id 'dev-01'"):
        gateway_config_from_mapping(document, tmp_path)


def test_duplicate_ue_service_id_rejected(tmp_path):
    document = with_device(tmp_path, 2, ue_service_id="meter-01")

    with pytest.raises(GatewayConfigError, match="duplicate ue_service_id 'meter-01'"):
        gateway_config_from_mapping(document, tmp_path)


def test_gateway_service_id_reserved(tmp_path):
    document = with_device(tmp_path, 0, ue_service_id="gateway-001")

    with pytest.raises(GatewayConfigError, match="gateway's own UE service ID"):
        gateway_config_from_mapping(document, tmp_path)


def test_plain_coap_needs_loopback(tmp_path):
    with pytest.raises(GatewayConfigError, match="only a loopback address"):
        build(tmp_path, listener={"transport": "coap", "host": "0.0.0.0", "port": 0})


def test_plain_coap_on_loopback_accepted(tmp_path):
    config = build(tmp_path, listener={"transport": "coap", "host": "::1", "port": 0})

    assert not config.listener.secured


def test_unknown_key_named(tmp_path):
    with pytest.raises(GatewayConfigError, match="unknown key listner"):
        build(tmp_path, listner={})


def test_bad_ue_section_named(tmp_path):
    with pytest.raises(GatewayConfigError, match="in section ue: missing supi"):
        build(tmp_path, ue={"k": "00" * 16})


def test_bad_bulk_wait_named(tmp_path):
    with pytest.raises(GatewayConfigError, match="invalid bulk_wait_ms -1"):
        build(tmp_path, bulk_wait_ms=-1)


def test_relative_paths_from_file(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "dev-02.psk").write_text(device_psk(7).hex() + "\n")
    document = gateway_document(tmp_path)
    document["database"] = "state/gateway.sqlite3"
    del document["devices"][1]["psk"]
    document["devices"][1]["psk_file"] = "keys/dev-02.psk"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))

    config = load_gateway_config(path)

    assert config.database == tmp_path / "state" / "gateway.sqlite3"
    assert config.device("dev-02").psk == device_psk(7)


def test_psk_and_psk_file_exclusive(tmp_path):
    document = with_device(tmp_path, 0, psk_file="x.psk")

    with pytest.raises(GatewayConfigError, match="exactly one of devices\\[0\\].psk"):
        gateway_config_from_mapping(document, tmp_path)


def test_example_config_loads():
    config = load_gateway_config(EXAMPLE)

    assert len(config.devices) >= 10
    assert config.listener.transport == "dtls"


@pytest.mark.parametrize("value", ["meter 01", "zähler-01", "", "m" * 256, "\tmeter"])
def test_bad_device_ue_service_id_named(tmp_path, value):
    document = with_device(tmp_path, 1, ue_service_id=value)

    with pytest.raises(GatewayConfigError) as raised:
        gateway_config_from_mapping(document, tmp_path)

    assert "invalid devices[1].ue_service_id" in str(raised.value)
    assert "1 to 255 printable ASCII characters" in str(raised.value)
    assert "^[!-~]+$" in str(raised.value)


def test_bad_gateway_ue_service_id_named(tmp_path):
    document = gateway_document(tmp_path)
    document["ue"] = {**document["ue"], "ue_service_id": "gateway 001"}

    with pytest.raises(GatewayConfigError, match=r"invalid ue.ue_service_id 'gateway 001'.*\^\[!-~\]\+\$"):
        gateway_config_from_mapping(document, tmp_path)


def test_long_ue_service_id_accepted(tmp_path):
    config = gateway_config_from_mapping(with_device(tmp_path, 0, ue_service_id="m" * 255), tmp_path)

    assert config.devices[0].ue_service_id == "m" * 255


def test_missing_ue_service_id_named(tmp_path):
    document = gateway_document(tmp_path)
    del document["devices"][2]["ue_service_id"]

    with pytest.raises(GatewayConfigError, match=r"missing devices\[2\].ue_service_id"):
        gateway_config_from_mapping(document, tmp_path)

"""`msgin5g provision` and the provision() library function."""

import sqlite3

import pytest
import yaml

from msgin5g.cli.main import main
from msgin5g.cli.provision import ProvisioningError, provision
from msgin5g.crypto.milenage import opc_from_op

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
SUPI = "imsi-001010000000001"


def subscriber(**changes) -> dict:
    entry = {
        "supi": SUPI,
        "k": K,
        "opc": OPC,
        "amf": "8000",
        "sqn": 0,
        "akma_allowed": True,
        "routing_indicator": "0",
    }
    entry.update(changes)
    return {name: value for name, value in entry.items() if value is not None}


def rows(database, table: str) -> list[tuple]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        connection.close()


def subscriber_row(database, supi: str = SUPI) -> dict:
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return dict(connection.execute("SELECT * FROM udm_subscribers WHERE supi = ?", (supi,)).fetchone())
    finally:
        connection.close()


def test_provision_writes_subscribers_and_associations(tmp_path):
    database = tmp_path / "db.sqlite3"

    result = provision(
        database,
        {
            "subscribers": [subscriber(gpsi="msisdn-491700000001")],
            "associations": [{"ue_service_id": "sensor-17", "ue_id": SUPI}],
        },
    )

    assert (result.subscribers, result.associations) == (1, 1)
    row = subscriber_row(database)
    assert row["opc"] == bytes.fromhex(OPC)
    assert row["gpsi"] == "msisdn-491700000001"
    assert row["akma_allowed"] == 1
    assert rows(database, "cm_associations") == [("sensor-17", SUPI, "own")]


def test_op_is_stored_as_opc(tmp_path):
    database = tmp_path / "db.sqlite3"

    provision(database, {"subscribers": [subscriber(opc=None, op=OP)]})

    assert subscriber_row(database)["opc"] == opc_from_op(bytes.fromhex(K), bytes.fromhex(OP))


def test_sqn_may_be_given_as_12_hex_digits(tmp_path):
    database = tmp_path / "db.sqlite3"

    provision(database, {"subscribers": [subscriber(sqn="000000000020")]})

    assert subscriber_row(database)["sqn"] == 32


def test_reprovisioning_a_supi_updates_it(tmp_path):
    database = tmp_path / "db.sqlite3"
    provision(database, {"subscribers": [subscriber()], "associations": [{"ue_service_id": "s", "ue_id": SUPI}]})

    provision(
        database,
        {
            "subscribers": [subscriber(sqn=640, akma_allowed=False)],
            "associations": [{"ue_service_id": "s", "ue_id": "msisdn-491700000001"}],
        },
    )

    row = subscriber_row(database)
    assert (row["sqn"], row["akma_allowed"]) == (640, 0)
    assert rows(database, "cm_associations") == [("s", "msisdn-491700000001", "own")]


def test_one_invalid_entry_writes_nothing(tmp_path):
    database = tmp_path / "db.sqlite3"
    document = {"subscribers": [subscriber(), subscriber(supi="imsi-001010000000002", k="00" * 15)]}

    with pytest.raises(ProvisioningError) as error:
        provision(database, document)

    assert "subscribers[1].k: must be 32 hexadecimal digits (16 octets)" in str(error.value)
    assert "nothing was written" in str(error.value)
    assert rows(database, "udm_subscribers") == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"supi": "imsi-12"}, "subscribers[0].supi: must be a SUPI such as imsi-001010000000001"),
        ({"gpsi": "491700000001"}, "subscribers[0].gpsi: must be a GPSI"),
        ({"op": OP}, "subscribers[0]: give exactly one of op and opc"),
        ({"opc": None}, "subscribers[0]: give exactly one of op and opc"),
        ({"amf": 8000}, 'subscribers[0].amf: must be quoted text, e.g. "8000"'),
        ({"sqn": 1 << 48}, "subscribers[0].sqn: must be an integer from 0 to 281474976710655"),
        ({"akma_allowed": "yes"}, "subscribers[0].akma_allowed: must be true or false"),
        ({"routing_indicator": 12}, "subscribers[0].routing_indicator: must be quoted text"),
        ({"routing_indicator": "12345"}, "subscribers[0].routing_indicator: must be 1 to 4 decimal digits"),
        ({"colour": "blue"}, "subscribers[0].colour: is not a known field"),
        ({"k": None}, "subscribers[0].k: is required but missing"),
    ],
    ids=["supi", "gpsi", "op-and-opc", "no-opc", "amf-number", "sqn-range", "akma-flag", "rid-number", "rid-long", "unknown", "no-k"],
)
def test_invalid_subscriber_field_is_explained(tmp_path, changes, expected):
    with pytest.raises(ProvisioningError) as error:
        provision(tmp_path / "db.sqlite3", {"subscribers": [subscriber(**changes)]})

    assert expected in str(error.value)


def test_errors_never_echo_key_values(tmp_path):
    bad_key = "zz" + K[2:]

    with pytest.raises(ProvisioningError) as error:
        provision(tmp_path / "db.sqlite3", {"subscribers": [subscriber(k=bad_key)]})

    assert bad_key not in str(error.value)


def test_duplicate_supi_is_rejected(tmp_path):
    with pytest.raises(ProvisioningError, match=r"subscribers\[1\] repeats the supi of subscribers\[0\]"):
        provision(tmp_path / "db.sqlite3", {"subscribers": [subscriber(), subscriber()]})


def test_invalid_association_is_explained(tmp_path):
    document = {"associations": [{"ue_service_id": "s", "ue_id": "alice"}]}

    with pytest.raises(ProvisioningError, match=r"associations\[0\]\.ue_id: must be a SUPI"):
        provision(tmp_path / "db.sqlite3", document)


def test_document_must_be_a_mapping(tmp_path):
    with pytest.raises(ProvisioningError, match="must be a mapping"):
        provision(tmp_path / "db.sqlite3", ["subscribers"])


def test_command_provisions_from_a_yaml_file(tmp_path, capsys):
    database, source = tmp_path / "db.sqlite3", tmp_path / "provisioning.yaml"
    source.write_text(yaml.safe_dump({"subscribers": [subscriber()]}), encoding="utf-8")

    status = main(["provision", "--database", str(database), "--file", str(source)])

    assert status == 0
    assert "provisioned 1 subscriber(s) and 0 association(s)" in capsys.readouterr().out
    assert subscriber_row(database)["supi"] == SUPI


def test_command_reports_an_invalid_file_with_status_2(tmp_path, capsys):
    database, source = tmp_path / "db.sqlite3", tmp_path / "provisioning.yaml"
    source.write_text("subscribers:\n  - supi: imsi-001010000000001\n", encoding="utf-8")

    status = main(["provision", "--database", str(database), "--file", str(source)])

    assert status == 2
    assert "subscribers[0].k: is required but missing" in capsys.readouterr().err
    assert not database.exists() or rows(database, "udm_subscribers") == []


def test_command_reports_a_missing_file(tmp_path, capsys):
    status = main(["provision", "--database", str(tmp_path / "db"), "--file", str(tmp_path / "absent.yaml")])

    assert status == 2
    assert "cannot read" in capsys.readouterr().err

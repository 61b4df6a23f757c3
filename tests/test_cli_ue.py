"""How `msgin5g ue` reads a UE configuration file."""

from msgin5g.cli.main import build_parser
from msgin5g.cli.ue import ue_profile

UE_YAML = """\
supi: imsi-001010000000001
k: "465b5ce8b199b49faa5f0a2ee238a6bc"
op: "cdc202d5123e20f62b6d676ac72cb318"
home_network: {mcc: "001", mnc: "01"}
ue_service_id: sensor-001
ausf: {uri: "http://127.0.0.1:8002"}
server: {host: 127.0.0.1, port: 8443, fqdn: msgin5g.example.test, profile: https-digest, ca_file: certs/ca.pem}
"""


def test_ca_file_relative_to_config_folder(tmp_path):
    config = tmp_path / "ue.yaml"
    config.write_text(UE_YAML)
    args = build_parser().parse_args(["ue", "register", "--config", str(config)])

    profile = ue_profile(args)

    assert profile.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert profile.security_profile == "https-digest"


def test_ca_file_option_relative_to_working_folder(tmp_path):
    config = tmp_path / "ue.yaml"
    config.write_text(UE_YAML)
    args = build_parser().parse_args(["ue", "register", "--config", str(config), "--ca-file", "other/ca.pem"])

    assert ue_profile(args).ca_file == "other/ca.pem"

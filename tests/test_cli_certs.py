"""`msgin5g certs`: the files it writes, the certificate chain and the overwrite guard."""

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from msgin5g.cli.main import main

FQDN = "msgin5g.example.test"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["certs", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_creates_four_files(tmp_path, capsys):
    status, out, _ = run(capsys, "--out", str(tmp_path / "certs"), "--fqdn", FQDN)
    names = ["ca.pem", "ca.key", "server.pem", "server.key"]

    assert status == 0
    assert out.splitlines() == [str(tmp_path / "certs" / name) for name in names]
    assert all((tmp_path / "certs" / name).is_file() for name in names)


def test_keys_private_to_owner(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN)

    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_ca_signs_server_certificate(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN)
    ca, server = load(tmp_path / "ca.pem"), load(tmp_path / "server.pem")

    server.verify_directly_issued_by(ca)  # Raises when the signature or issuer does not match.
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)


def test_san_lists_each_fqdn(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN, "--fqdn", "af2.example.test")
    san = load(tmp_path / "server.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName)

    assert san.value.get_values_for_type(x509.DNSName) == [FQDN, "af2.example.test"]


def test_days_sets_validity(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN, "--days", "10")
    server = load(tmp_path / "server.pem")
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc

    assert round(lifetime.total_seconds() / 86400) == 10


def test_refuses_to_overwrite(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN)
    before = (tmp_path / "ca.pem").read_bytes()

    status, _, err = run(capsys, "--out", str(tmp_path), "--fqdn", FQDN)

    assert status == 2
    assert "already exist; use --force" in err
    assert (tmp_path / "ca.pem").read_bytes() == before


def test_force_overwrites(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path), "--fqdn", FQDN)
    before = (tmp_path / "ca.pem").read_bytes()

    status, _, _ = run(capsys, "--out", str(tmp_path), "--fqdn", FQDN, "--force")

    assert status == 0
    assert (tmp_path / "ca.pem").read_bytes() != before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fqdn", "bad_name.example"], "invalid --fqdn"),
        (["--fqdn", FQDN, "--days", "0"], "invalid --days 0"),
    ],
)
def test_invalid_options(tmp_path, capsys, args, message):
    status, _, err = run(capsys, "--out", str(tmp_path), *args)

    assert status == 2
    assert message in err
    assert not (tmp_path / "ca.pem").exists()

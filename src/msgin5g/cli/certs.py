"""`msgin5g certs`: create a local CA and a server certificate for the AF's FQDN.

The HTTPS profile (TS 33.535 B.1.2) authenticates the AF with a certificate
that the UE verifies for the AF's FQDN. This command writes, into one folder:

    ca.pem      the CA certificate, which UEs (and curl --cacert) trust
    ca.key      the CA's private key
    server.pem  the server certificate, signed by the CA, SAN = every --fqdn
    server.key  the server's private key

Keys are ECDSA P-256, certificates are signed with SHA-256. The files are for
tests and local deployments: the keys are not encrypted, and are created with
mode 0600.
"""

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from msgin5g.cli.errors import UsageError
from msgin5g.crypto.akma import UA_HTTP_DIGEST, af_id
from msgin5g.crypto.errors import CryptoInputError

FILE_NAMES = ("ca.pem", "ca.key", "server.pem", "server.key")
DEFAULT_DAYS = 365
MAX_DAYS = 3650
# Certificates start one minute in the past, so that a peer with a clock a little behind accepts them.
BACKDATE = timedelta(minutes=1)
KEY_FILE_MODE = 0o600


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="create a local CA and a server certificate for the AF's FQDN (HTTPS profile)",
        description=(
            "Create a local CA (ca.pem, ca.key) and a server certificate signed by it "
            "(server.pem, server.key) whose subjectAltName lists each --fqdn. Prints the "
            "paths of the files. Existing files are kept unless --force is given."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the four files; created if missing")
    parser.add_argument(
        "--fqdn",
        required=True,
        action="append",
        metavar="FQDN",
        help="AF FQDN for the server certificate; repeat for more subjectAltNames (the first is the subject CN)",
    )
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity in days, 1 to {MAX_DAYS} (default {DEFAULT_DAYS})"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(handler=run_certs)


def run_certs(args: argparse.Namespace) -> int:
    fqdns = [_check_fqdn(fqdn) for fqdn in args.fqdn]
    if not 1 <= args.days <= MAX_DAYS:
        raise UsageError(f"invalid --days {args.days}: expected 1 to {MAX_DAYS}")

    paths = {name: args.out / name for name in FILE_NAMES}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not args.force:
        raise UsageError(f"{', '.join(existing)} already exist; use --force to overwrite, or another --out")

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        write_certificates(paths, fqdns, args.days)
    except OSError as error:
        raise UsageError(f"cannot write into {args.out}: {error.strerror or error}") from None

    for path in paths.values():
        print(path)
    return 0


def _check_fqdn(fqdn: str) -> str:
    try:
        af_id(fqdn, UA_HTTP_DIGEST)
    except CryptoInputError as error:
        raise UsageError(f"invalid --fqdn: {error}") from None
    return fqdn


def write_certificates(paths: dict[str, Path], fqdns: list[str], days: int) -> None:
    """Create the CA and the server certificate and write the four PEM files."""
    now = datetime.now(UTC)
    not_before, not_after = now - BACKDATE, now + timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = _ca_certificate(ca_key, fqdns[0], not_before, not_after)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = _server_certificate(server_key, ca_key, ca_certificate, fqdns, not_before, not_after)

    _write_key(paths["ca.key"], ca_key)
    _write_key(paths["server.key"], server_key)
    paths["ca.pem"].write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    paths["server.pem"].write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, fqdn: str, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"msgin5g local CA for {fqdn}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_certificate: x509.Certificate,
    fqdns: list[str],
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    ca_key_identifier = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdns[0])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn) for fqdn in fqdns]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_identifier),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_TRUNC keeps an existing file's mode, so the mode is set again after writing.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    os.chmod(path, KEY_FILE_MODE)

"""Test doubles and builders for the MSGin5G Server tests.

The AAnF and CM stand-ins are real HTTP/2 servers (Hypercorn and Starlette on
127.0.0.1, port 0) that respond in the shapes of TS 29.535 and TS 29.549. The
ClientHello builder produces raw TLS records for cases that a real TLS client
refuses to send, such as an empty PSK identity.
"""

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from msgin5g.crypto.akma import UA_TLS13, af_id, format_a_kid, k_af
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.server import bind_socket, serve, socket_uri
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.config import Limits
from msgin5g.service.kaf import AanfClient, KafCache, KafProvider
from msgin5g.service.registration import RegistrationService
from msgin5g.service.server import Msgin5gServer
from msgin5g.service.store import RegistrationStore

AF_FQDN = "msgin5g.example.test"
LOOPBACK = "127.0.0.1"


def make_a_kid(number: int) -> str:
    """A distinct A-KID in the project's layout for each `number`."""
    return format_a_kid("0", number.to_bytes(32, "big"), "001", "01")


def make_k_akma(number: int) -> bytes:
    return bytes([number % 256]) * 32


def k_af_for(number: int, fqdn: str = AF_FQDN) -> bytes:
    """K_AF that a UE with K_AKMA `make_k_akma(number)` derives for `fqdn`."""
    return k_af(make_k_akma(number), af_id(fqdn, UA_TLS13))


def supi_for(number: int) -> str:
    return f"imsi-00101{number:010d}"


@dataclass
class AkmaContext:
    """The AKMA context that the AAnF stand-in stores for one A-KID."""

    k_akma: bytes = field(repr=False)
    supi: str | None = None
    gpsi: str | None = None
    lifetime: timedelta = timedelta(hours=1)


class AanfStub:
    """POST /naanf-akma/v1/retrieve-applicationkey over HTTP/2.

    `hold[a_kid]` is an asyncio.Event that the response for that A-KID waits for;
    `requested[a_kid]` is set when a request for it arrives.
    """

    def __init__(self) -> None:
        self.contexts: dict[str, AkmaContext] = {}
        self.hold: dict[str, asyncio.Event] = {}
        self.requested: dict[str, asyncio.Event] = {}
        self.requests: list[dict] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/naanf-akma/v1/retrieve-applicationkey", self._retrieve, methods=["POST"]
                )
            ]
        )

    def add_ue(self, number: int, **options: object) -> str:
        """Register the AKMA context of test UE `number`; return its A-KID."""
        a_kid = make_a_kid(number)
        self.contexts[a_kid] = AkmaContext(
            make_k_akma(number), supi=options.pop("supi", supi_for(number)), **options
        )
        return a_kid

    def requested_event(self, a_kid: str) -> asyncio.Event:
        return self.requested.setdefault(a_kid, asyncio.Event())

    async def _retrieve(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        a_kid = body["aKId"]
        self.requested_event(a_kid).set()
        if a_kid in self.hold:
            await self.hold[a_kid].wait()

        context = self.contexts.get(a_kid)
        if context is None:
            return Response(status_code=204)

        fqdn, ua_protocol_id = body["afId"].split(";ua-protocol-id=")
        kaf = k_af(context.k_akma, af_id(fqdn, bytes.fromhex(ua_protocol_id)))
        document = {
            "kaf": kaf.hex(),
            "expiry": (datetime.now(UTC) + context.lifetime).isoformat().replace("+00:00", "Z"),
        }
        if context.supi is not None:
            document["supi"] = context.supi
        if context.gpsi is not None:
            document["gpsi"] = context.gpsi
        return JSONResponse(document)


class CmStub:
    """GET /ss-upr/v1/val-services?val-tgt-ue=... over HTTP/2, or 503 when unavailable."""

    def __init__(self) -> None:
        self.associations: dict[str, list[str]] = {}
        self.available = True
        self.queries: list[str] = []
        self.app = Starlette(routes=[Route("/ss-upr/v1/val-services", self._val_services)])

    def associate(self, ue_id: str, *ue_service_ids: str) -> None:
        self.associations.setdefault(ue_id, []).extend(ue_service_ids)

    async def _val_services(self, request: Request) -> Response:
        self.queries.append(request.query_params["val-tgt-ue"])
        if not self.available:
            return JSONResponse(
                {"status": 503, "cause": "NF_CONGESTION", "title": "Service Unavailable"},
                status_code=503,
                media_type="application/problem+json",
            )

        ue_id = json.loads(request.query_params["val-tgt-ue"])["valUeId"]
        profiles = [
            {
                "valTgtUe": {"valUserId": ue_service_id},
                "profileInformation": json.dumps(
                    {"ueServiceId": ue_service_id, "ueId": ue_id, "valServiceId": "msgin5g"}
                ),
            }
            for ue_service_id in self.associations.get(ue_id, [])
        ]
        return JSONResponse(profiles)


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` over h2c on 127.0.0.1 with a free port; yield its http:// URI."""
    sock = bind_socket(LOOPBACK, 0)
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, sock, shutdown))
    try:
        yield socket_uri(sock)
    finally:
        shutdown.set()
        # Bounded, because a handler may still wait on a held response.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()


@dataclass
class RunningServer:
    server: Msgin5gServer
    host: str
    port: int
    kaf: KafProvider
    store: RegistrationStore


@contextlib.asynccontextmanager
async def running_server(
    database: Path,
    aanf_uri: str,
    cm_uri: str,
    *,
    limits: Limits | None = None,
    cache: KafCache | None = None,
) -> AsyncIterator[RunningServer]:
    """Run the MSGin5G Server on 127.0.0.1 with a free port against the given AAnF and CM."""
    async with SbiClient(aanf_uri) as aanf_sbi, SbiClient(cm_uri) as cm_sbi:
        store = await RegistrationStore(database).open()
        kaf = KafProvider(AF_FQDN, AanfClient(aanf_sbi), cache)
        server = Msgin5gServer(
            kaf=kaf,
            service=RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store),
            limits=limits,
        )
        await server.start(LOOPBACK, 0)
        port = int(server.uri.rsplit(":", 1)[1])
        try:
            yield RunningServer(server, LOOPBACK, port, kaf, store)
        finally:
            await server.close()
            await kaf.aclose()
            await store.close()


@dataclass
class ProfileListener:
    """A listener of one Ua* security profile, with what a UE needs to reach it."""

    profile: str
    host: str
    port: int
    kaf: KafProvider
    store: RegistrationStore
    # The CA file that verifies the https-digest server certificate; None otherwise.
    ca_file: str | None = None


@contextlib.asynccontextmanager
async def running_listener(
    tmp_path: Path, profile: str, aanf_uri: str, cm_uri: str
) -> AsyncIterator[ProfileListener]:
    """Run the listener of `profile` on 127.0.0.1 with a free port against the given AAnF and CM."""
    # Imported here because these modules pull in Hypercorn and the DTLS engine.
    from msgin5g.cli.certs import FILE_NAMES, write_certificates
    from msgin5g.service.dtls_server import start_dtls12_listener
    from msgin5g.service.https_server import HttpsDigestOptions, start_https_listener
    from msgin5g.service.server import start_tls12_listener, start_tls13_listener

    async with SbiClient(aanf_uri) as aanf_sbi, SbiClient(cm_uri) as cm_sbi:
        store = await RegistrationStore(tmp_path / f"{profile}.sqlite").open()
        kaf = KafProvider(AF_FQDN, AanfClient(aanf_sbi))
        service = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store)
        options = {"kaf": kaf, "service": service, "limits": Limits(handshake_timeout=10)}
        ca_file = None
        if profile == "psk-tls1.3":
            listener = await start_tls13_listener(LOOPBACK, 0, **options)
        elif profile == "psk-tls1.2":
            listener = await start_tls12_listener(LOOPBACK, 0, **options)
        elif profile == "psk-dtls1.2":
            listener = await start_dtls12_listener(LOOPBACK, 0, **options)
        elif profile == "https-digest":
            folder = tmp_path / "certs"
            folder.mkdir(exist_ok=True)
            paths = {name: folder / name for name in FILE_NAMES}
            write_certificates(paths, [AF_FQDN], days=1)
            https = HttpsDigestOptions(certfile=paths["server.pem"], keyfile=paths["server.key"])
            listener = await start_https_listener(LOOPBACK, 0, options=https, **options)
            ca_file = str(paths["ca.pem"])
        else:
            raise ValueError(f"unknown security profile {profile!r}")

        port = int(listener.uri.rsplit(":", 1)[1])
        try:
            yield ProfileListener(profile, LOOPBACK, port, kaf, store, ca_file)
        finally:
            await listener.close()
            await kaf.aclose()
            await store.close()


# Raw ClientHello


def _vector(length_octets: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_octets, "big") + data


def _extension(extension_type: int, data: bytes) -> bytes:
    return extension_type.to_bytes(2, "big") + _vector(2, data)


def build_client_hello(
    *,
    cipher_suites: tuple[int, ...] = (0x1301, 0x1303),
    versions: tuple[int, ...] | None = (0x0304,),
    psk_modes: tuple[int, ...] | None = (1,),
    identities: tuple[bytes, ...] | None = (b"3GPP-AKMA" + b"x" * 10,),
    server_name: str | None = AF_FQDN,
    extra_extensions: tuple[tuple[int, bytes], ...] = (),
    extensions_after_psk: tuple[tuple[int, bytes], ...] = (),
    binder_count: int | None = None,
) -> bytes:
    """Return a ClientHello handshake message (header included, no record layer).

    The key_share carries a random X25519 share; the binders are zeros, so a TLS
    server that reaches the binder check rejects them.
    """
    extensions = b""
    if server_name is not None:
        name = b"\x00" + _vector(2, server_name.encode("ascii"))
        extensions += _extension(0, _vector(2, name))
    extensions += _extension(10, _vector(2, (0x001D).to_bytes(2, "big")))  # supported_groups
    extensions += _extension(13, _vector(2, (0x0804).to_bytes(2, "big")))  # signature_algorithms
    if versions is not None:
        extensions += _extension(43, _vector(1, b"".join(v.to_bytes(2, "big") for v in versions)))
    key_share = (0x001D).to_bytes(2, "big") + _vector(2, os.urandom(32))
    extensions += _extension(51, _vector(2, key_share))
    for extension_type, data in extra_extensions:
        extensions += _extension(extension_type, data)
    if psk_modes is not None:
        extensions += _extension(45, _vector(1, bytes(psk_modes)))
    if identities is not None:
        offered = b"".join(_vector(2, identity) + (0).to_bytes(4, "big") for identity in identities)
        count = len(identities) if binder_count is None else binder_count
        binders = b"".join(_vector(1, bytes(32)) for _ in range(count))
        extensions += _extension(41, _vector(2, offered) + _vector(2, binders))
    for extension_type, data in extensions_after_psk:
        extensions += _extension(extension_type, data)

    body = (
        (0x0303).to_bytes(2, "big")
        + os.urandom(32)
        + _vector(1, os.urandom(32))
        + _vector(2, b"".join(suite.to_bytes(2, "big") for suite in cipher_suites))
        + _vector(1, b"\x00")
        + _vector(2, extensions)
    )
    return b"\x01" + len(body).to_bytes(3, "big") + body


def as_records(handshake: bytes, fragment_size: int = 2**14) -> bytes:
    """Wrap handshake octets in TLS records of at most `fragment_size` octets each."""
    records = b""
    for start in range(0, len(handshake), fragment_size):
        fragment = handshake[start : start + fragment_size]
        records += b"\x16\x03\x01" + _vector(2, fragment)
    return records


async def send_raw_client_hello(host: str, port: int, records: bytes) -> bytes:
    """Send raw records and return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(records)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def certificate_server_context(tmp_path, *, alpn: bool = False) -> ssl.SSLContext:
    """Return a TLS server context with a self-signed certificate for AF_FQDN and no PSK."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AF_FQDN)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(AF_FQDN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_file = tmp_path / "server.pem"
    key_file = tmp_path / "server.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate_file, key_file)
    if alpn:
        context.set_alpn_protocols(["coap"])
    return context

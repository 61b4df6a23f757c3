"""The HTTPS profile end to end: real TLS, real HTTP, the AAnF and CM stand-ins, the UE client."""

import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from af_helpers import AF_FQDN, LOOPBACK, AanfStub, CmStub, make_a_kid, make_k_akma, serving, supi_for
from msgin5g.cli.certs import FILE_NAMES, write_certificates
from msgin5g.crypto.akma import af_id, k_af
from msgin5g.sbi.client import SbiClient
from msgin5g.service import messages
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.channel import ChannelError
from msgin5g.service.config import Limits
from msgin5g.service.https_channel import exchange_over_https
from msgin5g.service.https_server import HttpsDigestOptions, HttpsListener, start_https_listener
from msgin5g.service.kaf import AanfClient, KafProvider
from msgin5g.service.registration import RegistrationService
from msgin5g.service.store import RegistrationStore
from msgin5g.ua import digest

REG_PATH = "/msgin5g/v1/registrations"
SERVICE_ID = "ue-service-0001"


class StaleOnceNonces(digest.NonceSource):
    """A nonce source that reports the first nonce it checks as stale."""

    def __init__(self) -> None:
        super().__init__()
        self.stale_sent = 0

    def check(self, nonce: str, realm: str) -> digest.NonceStatus:
        status = super().check(nonce, realm)
        if status is digest.NonceStatus.VALID and self.stale_sent == 0:
            self.stale_sent += 1
            return digest.NonceStatus.STALE
        return status


def make_certificates(folder: Path, *fqdns: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in FILE_NAMES}
    write_certificates(paths, list(fqdns or (AF_FQDN,)), days=1)
    return paths


@dataclass
class HttpsDeployment:
    aanf: AanfStub
    cm: CmStub
    listener: HttpsListener
    port: int
    ca_file: str

    async def exchange(self, number: int, request: messages.Request, **options) -> messages.RegistrationResult:
        k_akma = options.pop("k_akma", make_k_akma(number))
        return await exchange_over_https(
            LOOPBACK, self.port, options.pop("af_fqdn", AF_FQDN), make_a_kid(number), k_akma, request,
            ca_file=self.ca_file, **options,
        )

    def client(self, **options) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=self.ca_file)
        return httpx.AsyncClient(verify=context, **options)

    async def post(self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await client.post(
            f"https://{LOOPBACK}:{self.port}{REG_PATH}",
            content=body,
            headers={"Host": f"{AF_FQDN}:{self.port}", "Content-Type": "application/json", **headers},
            extensions={"sni_hostname": AF_FQDN},
        )


@contextlib.asynccontextmanager
async def https_deployment(
    tmp_path: Path, *, server_fqdn: str = AF_FQDN, nonces: digest.NonceSource | None = None, **options
) -> AsyncIterator[HttpsDeployment]:
    """Run the HTTPS listener on 127.0.0.1 with a certificate for AF_FQDN, against AAnF and CM stand-ins."""
    aanf, cm = AanfStub(), CmStub()
    certificates = make_certificates(tmp_path / "certs", AF_FQDN)
    profile = HttpsDigestOptions(
        certfile=certificates["server.pem"], keyfile=certificates["server.key"], **options
    )
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with SbiClient(aanf_uri) as aanf_sbi, SbiClient(cm_uri) as cm_sbi:
            store = await RegistrationStore(tmp_path / "https.sqlite3").open()
            kaf = KafProvider(server_fqdn, AanfClient(aanf_sbi))
            service = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store)
            listener = await start_https_listener(
                LOOPBACK, 0, kaf=kaf, service=service, limits=Limits(), options=profile, nonces=nonces
            )
            port = int(listener.uri.rsplit(":", 1)[1])
            try:
                yield HttpsDeployment(aanf, cm, listener, port, str(certificates["ca.pem"]))
            finally:
                await listener.close()
                await kaf.aclose()
                await store.close()


def add_associated_ue(deployment: HttpsDeployment, number: int) -> None:
    deployment.aanf.add_ue(number)
    deployment.cm.associate(supi_for(number), SERVICE_ID)


def reg_body(ue_service_id: str = SERVICE_ID) -> bytes:
    return json.dumps({"messageType": "REG", "ueServiceId": ue_service_id}).encode()


def akma_challenge_headers(response: httpx.Response) -> list[str]:
    return [value for value in response.headers.get_list("www-authenticate") if "3GPP-bootstrapping-akma" in value]


def connection_kaf(response: httpx.Response, number: int) -> bytes:
    """K_AF that UE `number` derives for the cipher suite of the response's connection."""
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    return k_af(make_k_akma(number), af_id(AF_FQDN, digest.ua_protocol_id_for_cipher(ssl_object.cipher()[0])))


async def digest_round(
    deployment: HttpsDeployment, client: httpx.AsyncClient, number: int, *, password: str | None = None
) -> httpx.Response:
    """POST REG, answer the first AKMA challenge as UE `number`, and return the second response."""
    headers = {"User-Agent": "test 3gpp-akma/1"}
    first = await deployment.post(client, reg_body(), headers)
    challenge = digest.parse_challenges(first.headers.get_list("www-authenticate"))[0]
    if password is None:
        password = digest.digest_password(connection_kaf(first, number))
    credentials = digest.answer_challenge(
        challenge, username=make_a_kid(number), password=password, method="POST", uri=REG_PATH
    )
    return await deployment.post(client, reg_body(), {**headers, "Authorization": credentials.to_header()})


@pytest.fixture
async def deployment(tmp_path) -> AsyncIterator[HttpsDeployment]:
    async with https_deployment(tmp_path) as running:
        yield running


async def test_reg_accepted(deployment):
    add_associated_ue(deployment, 1)

    result = await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))

    assert result.accepted
    assert result.code == messages.Code.CREATED
    assert result.ue_service_id == SERVICE_ID


async def test_repeated_reg_then_dereg(deployment):
    add_associated_ue(deployment, 1)
    await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))

    repeated = await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID), http2=False)
    removed = await deployment.exchange(1, messages.DeregistrationRequest(SERVICE_ID))

    assert repeated.code == messages.Code.CHANGED
    assert removed.accepted
    assert removed.code == messages.Code.DELETED


async def test_unassociated_service_id_forbidden(deployment):
    deployment.aanf.add_ue(1)

    result = await deployment.exchange(1, messages.RegistrationRequest("ue-service-other"))

    assert not result.accepted
    assert result.code == messages.Code.FORBIDDEN
    assert result.cause is messages.Cause.UE_SERVICE_ID_NOT_ASSOCIATED


async def test_raw_forbidden_is_http_403(deployment):
    deployment.aanf.add_ue(1)
    async with deployment.client() as client:
        response = await digest_round(deployment, client, 1)

    assert response.status_code == 403
    assert response.json()["cause"] == "UE_SERVICE_ID_NOT_ASSOCIATED"


async def test_challenge_carries_akma_realm(deployment):
    async with deployment.client() as client:
        response = await deployment.post(client, reg_body(), {"User-Agent": "test 3gpp-akma"})
    challenges = digest.parse_challenges(response.headers.get_list("www-authenticate"))

    assert response.status_code == 401
    assert [c.realm for c in challenges] == [f"3GPP-bootstrapping-akma@{AF_FQDN}"] * 2
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop == ("auth",) for c in challenges)


async def test_missing_product_token_forbidden(deployment):
    async with deployment.client() as client:
        response = await deployment.post(client, reg_body(), {"User-Agent": "curl/8"})

    assert response.status_code == 403
    assert "3gpp-akma" in response.text
    assert response.headers.get("www-authenticate") is None


async def test_unknown_a_kid_has_no_realm(deployment, caplog):
    caplog.set_level(logging.INFO)
    async with deployment.client() as client:
        response = await digest_round(deployment, client, 77)

    assert response.status_code == 401
    assert akma_challenge_headers(response) == []
    assert "no AKMA context for the A-KID" in response.text
    assert any("rejected: the AAnF has no AKMA context" in r.getMessage() for r in caplog.records)


async def test_unknown_a_kid_client_cause(deployment):
    with pytest.raises(ChannelError) as error:
        await deployment.exchange(77, messages.RegistrationRequest(SERVICE_ID))

    assert error.value.cause.startswith("the server could not obtain K_AF for this A-KID")


async def test_wrong_kaf_rejected(deployment):
    deployment.aanf.add_ue(1)
    async with deployment.client() as client:
        response = await digest_round(deployment, client, 1, password=digest.digest_password(bytes(32)))

    assert response.status_code == 401
    assert len(akma_challenge_headers(response)) == 2


async def test_wrong_kaf_client_cause(deployment):
    add_associated_ue(deployment, 1)

    with pytest.raises(ChannelError) as error:
        await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID), k_akma=make_k_akma(2))

    assert "rejected the Digest response" in error.value.cause


async def test_stale_nonce_client_retries(tmp_path):
    nonces = StaleOnceNonces()
    async with https_deployment(tmp_path, nonces=nonces) as deployment:
        add_associated_ue(deployment, 1)
        result = await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))

    assert nonces.stale_sent == 1
    assert result.accepted


async def test_stale_nonce_sets_stale_true(tmp_path):
    async with https_deployment(tmp_path, nonces=StaleOnceNonces()) as deployment:
        add_associated_ue(deployment, 1)
        async with deployment.client() as client:
            response = await digest_round(deployment, client, 1)
    challenges = digest.parse_challenges(response.headers.get_list("www-authenticate"))

    assert response.status_code == 401
    assert all(challenge.stale for challenge in challenges)


async def test_foreign_realm_client_aborts(tmp_path):
    # This server challenges with the realm of another AF behind a certificate for AF_FQDN.
    async with https_deployment(tmp_path, server_fqdn="other-af.example.test") as deployment:
        add_associated_ue(deployment, 1)
        with pytest.raises(ChannelError) as error:
            await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))

        assert "names another AF" in error.value.cause
        assert deployment.aanf.requests == []


async def test_certificate_for_other_fqdn_refused(deployment):
    with pytest.raises(ChannelError) as error:
        await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID), af_fqdn="other.example.test")

    assert "does not verify for 'other.example.test'" in error.value.cause


async def test_tls12_kaf_uses_cipher_suite(deployment):
    add_associated_ue(deployment, 1)

    await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID), max_tls_version="1.2")
    af_ids = [request["afId"] for request in deployment.aanf.requests]

    assert af_ids in (
        [f"{AF_FQDN};ua-protocol-id=010001c02b"],  # ECDHE-ECDSA-AES128-GCM-SHA256
        [f"{AF_FQDN};ua-protocol-id=010001c02c"],  # ECDHE-ECDSA-AES256-GCM-SHA384
    )


async def test_tls13_kaf_uses_tls13_suite(deployment):
    add_associated_ue(deployment, 1)

    await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))
    af_id_wire = deployment.aanf.requests[0]["afId"]

    assert af_id_wire.rsplit("=", 1)[1] in ("0100011301", "0100011302", "0100011303")


async def test_http2_negotiated(deployment):
    async with deployment.client(http2=True) as client:
        response = await deployment.post(client, reg_body(), {"User-Agent": "3gpp-akma"})

    assert response.http_version == "HTTP/2"


async def test_malformed_body_bad_request(deployment):
    deployment.aanf.add_ue(1)
    async with deployment.client() as client:
        first = await deployment.post(client, b"{", {"User-Agent": "3gpp-akma"})
        challenge = digest.parse_challenges(first.headers.get_list("www-authenticate"))[0]
        credentials = digest.answer_challenge(
            challenge,
            username=make_a_kid(1),
            password=digest.digest_password(connection_kaf(first, 1)),
            method="POST",
            uri=REG_PATH,
        )
        response = await deployment.post(
            client, b"{", {"User-Agent": "3gpp-akma", "Authorization": credentials.to_header()}
        )

    assert response.status_code == 400
    assert response.json()["cause"] == "MALFORMED_MESSAGE"


async def test_no_secret_in_logs(deployment, caplog):
    caplog.set_level(logging.DEBUG)
    add_associated_ue(deployment, 1)

    await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID))
    with pytest.raises(ChannelError):
        await deployment.exchange(1, messages.RegistrationRequest(SERVICE_ID), k_akma=make_k_akma(2))
    request = deployment.aanf.requests[0]
    fqdn, ua_hex = request["afId"].split(";ua-protocol-id=")
    key = k_af(make_k_akma(1), af_id(fqdn, bytes.fromhex(ua_hex)))
    text = caplog.text + "".join(repr(record.args) for record in caplog.records)

    assert key.hex() not in text
    assert digest.digest_password(key) not in text
    assert make_k_akma(1).hex() not in text

"""UeSession: re-authentication after K_AF expiry or a replaced A-KID, and its bound."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from af_helpers import (
    AF_FQDN,
    AanfStub,
    CmStub,
    ProfileListener,
    make_a_kid,
    make_k_akma,
    running_listener,
    serving,
    supi_for,
)
from msgin5g.service.client import FAILED, REGISTERED
from msgin5g.service.primary_auth import AkmaKeys
from msgin5g.service.session import EXPIRY, REAUTHENTICATION_LIMIT, REKEY, ROUND_OK, UeSession
from msgin5g.service.ue_profile import UeProfile

SERVICE_ID = "ue-service-1"
SUPI = supi_for(1)
ALL_PROFILES = ["psk-tls1.3", "psk-tls1.2", "psk-dtls1.2", "https-digest"]


class AusfDouble:
    """Primary authentication without an AUSF: each run gives the next test UE's A-KID and K_AKMA.

    `lifetimes[i]` is the K_AF lifetime at the AAnF for the context of run i;
    with `store_contexts` False the AAnF never learns a context, so it returns 204.
    """

    def __init__(self, aanf: AanfStub, lifetimes: list[timedelta], *, store_contexts: bool = True) -> None:
        self.aanf = aanf
        self.lifetimes = lifetimes
        self.store_contexts = store_contexts
        self.runs = 0

    async def authenticate(self, http: httpx.AsyncClient, profile: UeProfile, usim: object) -> AkmaKeys:
        self.runs += 1
        number = 10 + self.runs
        if self.store_contexts:
            lifetime = self.lifetimes[min(self.runs, len(self.lifetimes)) - 1]
            self.aanf.add_ue(number, supi=SUPI, lifetime=lifetime)
        return AkmaKeys(supi=SUPI, a_kid=make_a_kid(number), k_akma=make_k_akma(number))


def ue_profile(listener: ProfileListener) -> UeProfile:
    return UeProfile(
        supi=SUPI,
        k=bytes(16),
        opc=bytes(16),
        mcc="001",
        mnc="01",
        routing_indicator="0",
        ue_service_id=SERVICE_ID,
        ausf_uri="http://127.0.0.1:9",
        server_host=listener.host,
        server_port=listener.port,
        server_fqdn=AF_FQDN,
        security_profile=listener.profile,
        ca_file=listener.ca_file,
    )


class Deployment:
    def __init__(self, aanf: AanfStub, listener: ProfileListener) -> None:
        self.aanf = aanf
        self.listener = listener

    def session(self, ausf: AusfDouble, **options) -> UeSession:
        return UeSession(
            httpx.AsyncClient(), ue_profile(self.listener), object(), authenticator=ausf.authenticate, **options
        )


@pytest.fixture
async def deployment(tmp_path, request) -> AsyncIterator[Deployment]:
    aanf, cm = AanfStub(), CmStub()
    cm.associate(SUPI, SERVICE_ID)
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_listener(tmp_path, request.param, aanf_uri, cm_uri) as listener:
            yield Deployment(aanf, listener)


def rounds(session: UeSession) -> list[tuple[str, str]]:
    return [(entry.kind, entry.outcome) for entry in session.rounds]


@pytest.mark.parametrize("deployment", ["psk-tls1.3", "psk-tls1.2"], indirect=True)
async def test_expiry_reauthenticates(deployment):
    ausf = AusfDouble(deployment.aanf, [timedelta(seconds=1.5), timedelta(hours=1)])
    async with deployment.session(ausf) as session:
        async with asyncio.timeout(30):
            outcome = await session.keep_registered(3.5)
        a_kid = session.keys.a_kid

    assert outcome.outcome == REGISTERED
    assert rounds(session) == [(EXPIRY, ROUND_OK)]
    assert ausf.runs == 2
    assert a_kid == make_a_kid(12)
    assert session.lifecycle[0]["milliseconds"] > 0


@pytest.mark.parametrize("deployment", ["psk-tls1.3"], indirect=True)
async def test_expiry_without_reauthentication_left(deployment):
    ausf = AusfDouble(deployment.aanf, [timedelta(seconds=1.5)])
    async with deployment.session(ausf, max_reauthentications=0) as session:
        async with asyncio.timeout(30):
            outcome = await session.keep_registered(3.5)

    assert outcome.outcome == FAILED
    assert outcome.cause == REAUTHENTICATION_LIMIT
    assert ausf.runs == 1


@pytest.mark.parametrize("deployment", ALL_PROFILES, indirect=True)
async def test_replaced_a_kid_recovers(deployment):
    ausf = AusfDouble(deployment.aanf, [timedelta(hours=1)])
    async with deployment.session(ausf) as session:
        # The keys of an earlier primary authentication whose AKMA context the AAnF replaced.
        session.keys = AkmaKeys(supi=SUPI, a_kid=make_a_kid(5), k_akma=make_k_akma(5))
        async with asyncio.timeout(30):
            outcome = await session.register()

    assert outcome.outcome == REGISTERED
    assert rounds(session) == [(REKEY, ROUND_OK)]
    assert ausf.runs == 1


@pytest.mark.parametrize("deployment", ALL_PROFILES, indirect=True)
async def test_reauthentication_bounded(deployment):
    ausf = AusfDouble(deployment.aanf, [timedelta(hours=1)], store_contexts=False)
    async with deployment.session(ausf, max_reauthentications=2) as session:
        async with asyncio.timeout(60):
            outcome = await session.register()

    assert outcome.outcome == FAILED
    assert outcome.cause == REAUTHENTICATION_LIMIT
    assert "after 2 re-authentications" in outcome.detail
    assert ausf.runs == 3
    assert [kind for kind, _ in rounds(session)] == [REKEY, REKEY]
    assert all(result != ROUND_OK for _, result in rounds(session))


@pytest.mark.parametrize("deployment", ["psk-tls1.3"], indirect=True)
async def test_register_reuses_keys(deployment):
    ausf = AusfDouble(deployment.aanf, [timedelta(hours=1)])
    async with deployment.session(ausf) as session:
        first = await session.register()
        second = await session.register()
        removed = await session.deregister()

    assert first.outcome == REGISTERED
    assert second.outcome == REGISTERED
    assert removed.outcome == "deregistered"
    assert ausf.runs == 1
    assert session.rounds == []


def test_negative_bound_rejected():
    with pytest.raises(ValueError, match="max_reauthentications"):
        UeSession(httpx.AsyncClient(), None, object(), max_reauthentications=-1)

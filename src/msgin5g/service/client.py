"""The MSGin5G Client in a UE: 5G AKA, AKMA keys, TLS keyed by K_AF, then REG.

TS 33.501 Annex Y.2: the client authenticates to the MSGin5G Server with AKMA
after primary authentication, and registers with its UE service ID.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from msgin5g.service import messages
from msgin5g.service.channel import ChannelError, exchange_over_tls12, exchange_over_tls13
from msgin5g.service.dtls_channel import exchange_over_dtls12
from msgin5g.service.https_channel import exchange_over_https
from msgin5g.service.messages import RegistrationResult
from msgin5g.service.primary_auth import PrimaryAuthenticationError, authenticate
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

logger = logging.getLogger(__name__)

REGISTERED = "registered"
DEREGISTERED = "deregistered"
REJECTED = "rejected"
FAILED = "failed"

PROFILE_TLS13 = "psk-tls1.3"


@dataclass(frozen=True)
class RegistrationOutcome:
    """How one UE's registration attempt ended.

    `outcome` is registered or deregistered, rejected (the server rejected the
    REG or DEREG) or failed
    (no session: primary authentication or the TLS handshake failed). `cause`
    is a short code and `detail` names what to check.
    """

    outcome: str
    cause: str | None
    detail: str
    milliseconds: float
    profile: str = PROFILE_TLS13


SBI_TIMEOUT_SECONDS = 10.0


EXCHANGES = {
    "psk-tls1.3": exchange_over_tls13,
    "psk-tls1.2": exchange_over_tls12,
    "https-digest": exchange_over_https,
    "psk-dtls1.2": exchange_over_dtls12,
}


def _exchange_for(profile: UeProfile) -> tuple[Callable[..., Awaitable[RegistrationResult]], dict[str, Any]]:
    exchange = EXCHANGES[profile.security_profile]
    if profile.security_profile == "https-digest":
        return exchange, {"ca_file": profile.ca_file}
    return exchange, {}


def new_http_client() -> httpx.AsyncClient:
    """Return an SBI client: HTTP/2 with prior knowledge over cleartext TCP."""
    return httpx.AsyncClient(http1=False, http2=True, timeout=SBI_TIMEOUT_SECONDS)


def describe_http_error(error: httpx.HTTPError) -> str:
    """Describe an httpx failure in words, because some of them have an empty message."""
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {SBI_TIMEOUT_SECONDS:.0f} s ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return f"connection failed ({error or type(error).__name__}); is the AUSF running there?"
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"{detail}; is this the AUSF's SBI address (HTTP/2 without TLS)?"


async def register_ue(http: httpx.AsyncClient, profile: UeProfile, usim: Usim) -> RegistrationOutcome:
    """Authenticate, open the secure channel and send REG; a protocol failure becomes the outcome."""
    return await _timed(http, profile, usim, deregister=False)


async def deregister_ue(http: httpx.AsyncClient, profile: UeProfile, usim: Usim) -> RegistrationOutcome:
    """Authenticate, open the secure channel and send DEREG; a protocol failure becomes the outcome."""
    return await _timed(http, profile, usim, deregister=True)


async def _timed(
    http: httpx.AsyncClient, profile: UeProfile, usim: Usim, *, deregister: bool
) -> RegistrationOutcome:
    started = time.perf_counter()
    outcome, cause, detail = await _attempt(http, profile, usim, deregister)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return RegistrationOutcome(
        outcome=outcome, cause=cause, detail=detail, milliseconds=elapsed_ms,
        profile=profile.security_profile,
    )


async def _attempt(
    http: httpx.AsyncClient, profile: UeProfile, usim: Usim, deregister: bool
) -> tuple[str, str | None, str]:
    try:
        keys = await authenticate(http, profile, usim)
    except PrimaryAuthenticationError as error:
        return FAILED, error.cause, f"primary authentication failed: {error}"
    except httpx.HTTPError as error:
        return FAILED, "AUSF_UNREACHABLE", f"the request to the AUSF at {profile.ausf_uri} failed: {describe_http_error(error)}"

    request = (
        messages.DeregistrationRequest(profile.ue_service_id)
        if deregister
        else messages.RegistrationRequest(profile.ue_service_id)
    )
    exchange, options = _exchange_for(profile)
    try:
        # Each profile derives K_AF itself (TS 33.535 Annex A.4), because its AF_ID
        # may depend on the cipher suite negotiated on the connection.
        result = await exchange(
            profile.server_host, profile.server_port, profile.server_fqdn,
            keys.a_kid, keys.k_akma, request, **options,
        )
    except ChannelError as error:
        cause = error.alert.name.upper() if error.alert is not None else "CHANNEL_FAILED"
        where = f"{profile.server_host}:{profile.server_port}, AF FQDN {profile.server_fqdn}"
        return FAILED, cause, (
            f"{profile.security_profile} session with the MSGin5G Server ({where}) failed: "
            f"{error.cause} (check that this address is the server's {profile.security_profile} listener)"
        )
    except OSError as error:
        return FAILED, "SERVER_UNREACHABLE", (
            f"cannot reach the MSGin5G Server: {error} (check the address and that it is the "
            f"server's {profile.security_profile} listener)"
        )

    if result.accepted:
        return (DEREGISTERED if deregister else REGISTERED), None, result.detail
    cause = result.cause.value if result.cause is not None else str(result.code)
    return REJECTED, cause, result.detail

"""A UE's MSGin5G-1 session that outlives K_AF expiry and a replaced AKMA context.

TS 33.535 clause 6: K_AF has a lifetime that the AAnF gives the AF, and the AF
ends the security association when it expires. The UE keeps the AKMA keys of
its last primary authentication. It runs primary authentication again, which
gives a new K_AKMA and A-KID, when

- the server closes the channel because K_AF expired (a round of kind `expiry`), or
- the server rejects the A-KID, for example after the AAnF replaced the AKMA
  context with a newer one (a round of kind `rekey`).

It then reconnects and repeats the request. Each call re-authenticates at most
`max_reauthentications` times, so a server that keeps rejecting ends in a
failure with the cause REAUTHENTICATION_LIMIT.

    async with UeSession(http, profile, usim) as session:
        outcome = await session.keep_registered(600.0)
        print(session.lifecycle)
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

import httpx

from msgin5g.crypto.akma import UA_TLS13, af_id, k_af
from msgin5g.service import messages
from msgin5g.service.channel import ChannelError, SecureChannel
from msgin5g.service.client import (
    DEREGISTERED,
    EXCHANGES,
    FAILED,
    REGISTERED,
    REJECTED,
    RegistrationOutcome,
    describe_http_error,
)
from msgin5g.service.messages import RegistrationResult
from msgin5g.service.primary_auth import AkmaKeys, PrimaryAuthenticationError, authenticate
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim
from msgin5g.ua.alerts import AlertDescription

logger = logging.getLogger(__name__)

EXPIRY = "expiry"
REKEY = "rekey"
ROUND_OK = "ok"
REAUTHENTICATION_LIMIT = "REAUTHENTICATION_LIMIT"
DEFAULT_MAX_REAUTHENTICATIONS = 2
# Channel closures that `keep_registered` recovers from in one call, expiry or not.
MAX_CHANNEL_CLOSURES = 10
CHANNEL_CLOSED_REPEATEDLY = "CHANNEL_CLOSED_REPEATEDLY"

# The MSGin5G Server's CoAP Release diagnostic at K_AF expiry starts with this text.
KAF_EXPIRED_DIAGNOSTIC = "K_AF expired"
# Part of the https_channel error when the server cannot obtain K_AF for the A-KID.
# NOTE: matched as text because that ChannelError carries no code of its own.
HTTPS_UNKNOWN_A_KID = "could not obtain K_AF for this A-KID"

# Profiles whose session is a long-lived channel that the server can close.
CHANNEL_PROFILES = frozenset({"psk-tls1.3", "psk-tls1.2"})

Authenticator = Callable[[httpx.AsyncClient, UeProfile, Usim], Awaitable[AkmaKeys]]


@dataclass(frozen=True)
class LifecycleRound:
    """One automatic recovery: primary authentication again, reconnection and the repeated request.

    `kind` is `expiry` or `rekey`; `outcome` is `ok` or the cause of the failure.
    """

    kind: str
    outcome: str
    milliseconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "outcome": self.outcome, "milliseconds": round(self.milliseconds, 1)}


class _Attempts:
    """The re-authentications left for one call, and the round in progress."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.kind: str | None = None
        self.started = 0.0

    def start_round(self, kind: str) -> None:
        self.left -= 1
        self.kind = kind
        self.started = time.perf_counter()


class UeSession:
    """The UE's AKMA keys, its channel to the MSGin5G Server, and the rounds of recovery."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        profile: UeProfile,
        usim: Usim,
        *,
        max_reauthentications: int = DEFAULT_MAX_REAUTHENTICATIONS,
        authenticator: Authenticator = authenticate,
    ) -> None:
        if not isinstance(max_reauthentications, int) or max_reauthentications < 0:
            raise ValueError(
                f"max_reauthentications must be an integer of at least 0, got {max_reauthentications!r}"
            )
        self.profile = profile
        self.max_reauthentications = max_reauthentications
        self.keys: AkmaKeys | None = None
        self.rounds: list[LifecycleRound] = []
        self._http = http
        self._usim = usim
        self._authenticator = authenticator
        self._channel: SecureChannel | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def lifecycle(self) -> list[dict[str, Any]]:
        """The recovery rounds so far, as JSON-ready dicts."""
        return [entry.as_dict() for entry in self.rounds]

    async def register(self) -> RegistrationOutcome:
        """Send REG, authenticating first if needed and recovering from expiry or re-keying."""
        request = messages.RegistrationRequest(self.profile.ue_service_id)
        return await self._timed(request, _Attempts(self.max_reauthentications))

    async def deregister(self) -> RegistrationOutcome:
        """Send DEREG as `register` sends REG, then close the channel."""
        request = messages.DeregistrationRequest(self.profile.ue_service_id)
        try:
            return await self._timed(request, _Attempts(self.max_reauthentications))
        finally:
            await self.close()

    async def keep_registered(self, duration: float) -> RegistrationOutcome:
        """Register, then keep the registration for `duration` seconds.

        Each time the server closes the channel, the UE recovers (re-authenticating
        when K_AF expired) and registers again, at most MAX_CHANNEL_CLOSURES times.
        Returns the last outcome, which is not `registered` when a recovery failed.
        """
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        attempts = _Attempts(self.max_reauthentications)
        request = messages.RegistrationRequest(self.profile.ue_service_id)

        outcome = await self._timed(request, attempts)
        closures = 0
        while outcome.outcome == REGISTERED and loop.time() < deadline:
            channel = self._channel
            if channel is None:
                # NOTE: psk-dtls1.2 and https-digest open a session per request, so
                # nothing is held here; the next request recovers if it must.
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                break
            try:
                async with asyncio.timeout_at(deadline):
                    reason = await channel.wait_closed()
            except TimeoutError:
                break

            closures += 1
            if closures > MAX_CHANNEL_CLOSURES:
                await self.close()
                return RegistrationOutcome(
                    outcome=FAILED,
                    cause=CHANNEL_CLOSED_REPEATEDLY,
                    detail=(
                        f"the server closed the channel {closures} times within {duration} s, the last "
                        f"time because {reason}; check the server's log"
                    ),
                    milliseconds=(time.perf_counter() - started) * 1000.0,
                    profile=self.profile.security_profile,
                )
            logger.info("UE %s: the channel closed (%s); registering again", self.profile.ue_service_id, reason)
            outcome = await self._timed(request, attempts)
        return outcome

    async def close(self) -> None:
        """Close the channel, if one is open; the AKMA keys are kept."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    # One request with its recoveries

    async def _timed(self, request: messages.Request, attempts: _Attempts) -> RegistrationOutcome:
        started = time.perf_counter()
        outcome, cause, detail = await self._attempt(request, attempts)
        if attempts.kind is not None:
            self._finish_round(attempts, ROUND_OK if outcome in (REGISTERED, DEREGISTERED) else cause or outcome)
        return RegistrationOutcome(
            outcome=outcome,
            cause=cause,
            detail=detail,
            milliseconds=(time.perf_counter() - started) * 1000.0,
            profile=self.profile.security_profile,
        )

    async def _attempt(
        self, request: messages.Request, attempts: _Attempts
    ) -> tuple[str, str | None, str]:
        deregister = isinstance(request, messages.DeregistrationRequest)
        while True:
            try:
                if self.keys is None:
                    self.keys = await self._authenticator(self._http, self.profile, self._usim)
                result = await self._send(request)
            except PrimaryAuthenticationError as error:
                return FAILED, error.cause, f"primary authentication failed: {error}"
            except httpx.HTTPError as error:
                return FAILED, "AUSF_UNREACHABLE", (
                    f"the request to the AUSF at {self.profile.ausf_uri} failed: {describe_http_error(error)}"
                )
            except OSError as error:
                return FAILED, "SERVER_UNREACHABLE", (
                    f"cannot reach the MSGin5G Server: {error} (check the address and that it is the "
                    f"server's {self.profile.security_profile} listener)"
                )
            except ChannelError as error:
                failure = await self._recover(error, attempts)
                if failure is not None:
                    return failure
                continue

            if result.accepted:
                return (DEREGISTERED if deregister else REGISTERED), None, result.detail
            return REJECTED, result.cause.value if result.cause is not None else str(result.code), result.detail

    async def _recover(
        self, error: ChannelError, attempts: _Attempts
    ) -> tuple[str, str | None, str] | None:
        """Close the channel and drop the AKMA keys, so that the retry re-authenticates.

        Returns the failure instead when new keys cannot fix `error` or no
        re-authentication is left.
        """
        await self.close()
        kind = _recovery_kind(error)
        cause = _channel_cause(error)
        if attempts.kind is not None:
            self._finish_round(attempts, cause)
        if kind is None:
            return FAILED, cause, self._channel_detail(error)

        if attempts.left <= 0:
            logger.warning(
                "UE %s: no re-authentication left after %d (%s)",
                self.profile.ue_service_id, self.max_reauthentications, error.cause,
            )
            return FAILED, REAUTHENTICATION_LIMIT, (
                f"the server still rejects the session after {self.max_reauthentications} "
                f"re-authentications ({error.cause}); check that the AAnF stores the AKMA context "
                "that the AUSF sends after primary authentication"
            )

        attempts.start_round(kind)
        logger.info(
            "UE %s: %s; running primary authentication again",
            self.profile.ue_service_id,
            "K_AF expired" if kind == EXPIRY else "the server rejected the A-KID",
        )
        self.keys = None
        return None

    def _finish_round(self, attempts: _Attempts, outcome: str) -> None:
        elapsed = (time.perf_counter() - attempts.started) * 1000.0
        self.rounds.append(LifecycleRound(attempts.kind or EXPIRY, outcome, elapsed))
        attempts.kind = None

    def _channel_detail(self, error: ChannelError) -> str:
        where = f"{self.profile.server_host}:{self.profile.server_port}, AF FQDN {self.profile.server_fqdn}"
        return (
            f"{self.profile.security_profile} session with the MSGin5G Server ({where}) failed: "
            f"{error.cause} (check that this address is the server's {self.profile.security_profile} listener)"
        )

    # Transport

    async def _send(self, request: messages.Request) -> RegistrationResult:
        keys = self.keys
        if keys is None:
            raise RuntimeError("_send needs AKMA keys; authenticate first")
        if self.profile.security_profile not in CHANNEL_PROFILES:
            return await self._exchange(keys, request)

        channel = await self._open_channel(keys)
        if isinstance(request, messages.DeregistrationRequest):
            return await channel.deregister(request.ue_service_id)
        return await channel.register(request.ue_service_id, request.client_profile)

    async def _open_channel(self, keys: AkmaKeys) -> SecureChannel:
        """Return the open channel, or connect a new one.

        A channel that the server closed because K_AF expired raises ChannelError,
        so that the caller re-authenticates. A channel closed for another reason
        (such as a server restart) is replaced with the same keys.
        """
        channel = self._channel
        if channel is not None and channel.closed:
            reason = channel.close_reason or "closed"
            await self.close()
            if KAF_EXPIRED_DIAGNOSTIC in reason:
                raise ChannelError(reason)
            logger.info("UE %s: the channel closed (%s); reconnecting", self.profile.ue_service_id, reason)
        if self._channel is None:
            self._channel = await self._connect(keys)
        return self._channel

    async def _connect(self, keys: AkmaKeys) -> SecureChannel:
        profile = self.profile
        if profile.security_profile == "psk-tls1.2":
            return await SecureChannel.connect_tls12(
                profile.server_host, profile.server_port, profile.server_fqdn, keys.a_kid, keys.k_akma
            )
        # TS 33.535 Annex A.4: K_AF for AF_ID = FQDN || Ua* protocol identifier of TLS 1.3.
        key = k_af(keys.k_akma, af_id(profile.server_fqdn, UA_TLS13))
        return await SecureChannel.connect(
            profile.server_host, profile.server_port, profile.server_fqdn, keys.a_kid, key
        )

    async def _exchange(self, keys: AkmaKeys, request: messages.Request) -> RegistrationResult:
        profile = self.profile
        options: dict[str, Any] = {}
        if profile.security_profile == "https-digest":
            options["ca_file"] = profile.ca_file
        exchange = EXCHANGES[profile.security_profile]
        return await exchange(
            profile.server_host, profile.server_port, profile.server_fqdn,
            keys.a_kid, keys.k_akma, request, **options,
        )


def _recovery_kind(error: ChannelError) -> str | None:
    """Return `expiry` or `rekey` when new AKMA keys may fix `error`, else None."""
    if KAF_EXPIRED_DIAGNOSTIC in error.cause:
        return EXPIRY
    if error.alert is AlertDescription.unknown_psk_identity or HTTPS_UNKNOWN_A_KID in error.cause:
        return REKEY
    return None


def _channel_cause(error: ChannelError) -> str:
    if KAF_EXPIRED_DIAGNOSTIC in error.cause:
        return "KAF_EXPIRED"
    if error.alert is not None:
        return error.alert.name.upper()
    if HTTPS_UNKNOWN_A_KID in error.cause:
        return "UNKNOWN_A_KID"
    return "CHANNEL_FAILED"

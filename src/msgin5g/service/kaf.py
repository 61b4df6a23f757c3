"""K_AF for the MSGin5G Server as AKMA AF: the AAnF consumer and the K_AF cache.

The AF requests K_AF from the AAnF with the A-KID that the UE sent and its own AF_ID
(Naanf_AKMA_ApplicationKey_Get, TS 33.535 clause 7.1.3; TS 29.535
POST /naanf-akma/v1/retrieve-applicationkey). The AAnF returns K_AF, its expiry
and the UE ID (SUPI, or GPSI), or 204 when it has no AKMA context for the
A-KID.

An AF outside the operator's network gets the same data from the NEF instead
(TS 29.522 POST /3gpp-akma/v1/retrieve), with the GPSI in place of the SUPI.
`NefClient` first fetches an OAuth 2.0 access token from the NEF's token
endpoint with its client credentials (RFC 6749 clause 4.4) and reuses it
until shortly before it expires.

`KafProvider.obtain` is the asynchronous path used before the TLS handshake
continues; `KafProvider.lookup` is the synchronous, cache-only path used inside
OpenSSL's PSK callback. The cache keeps each entry per (A-KID, AF_ID) until its
expiry and drops it then, so an expired K_AF is fetched again.

With a shared layer (`KafCache(shared=...)`, e.g. Redis), server instances
share their K_AF entries: on a miss in its own dict, `obtain` first reads the
shared layer and only then requests K_AF from the AAnF, and it writes what the
AAnF returned to the shared layer. `lookup` reads the dict only, so it never waits for I/O.
"""

import asyncio
import base64
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote_plus

import httpx
from pydantic import ValidationError

from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire
from msgin5g.sbi.oauth import SelfIssuedToken
from msgin5g.sbi.client import SbiClient, SbiClientError, SbiProblemError, check_base_uri, parse_problem
from msgin5g.sbi.models.naanf_akma import (
    RETRIEVE_APPLICATION_KEY_PATH,
    AkmaAfKeyData,
    AkmaAfKeyRequest,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHE_ENTRIES = 100_000


@dataclasses.dataclass(frozen=True)
class KafEntry:
    """K_AF for one (A-KID, AF_ID) with its expiry and the UE ID the AAnF returned."""

    a_kid: str
    af_id: bytes
    k_af: bytes = dataclasses.field(repr=False)
    expiry: datetime
    # Personal data: kept out of repr, logged only at DEBUG.
    supi: str | None = dataclasses.field(default=None, repr=False)
    gpsi: str | None = dataclasses.field(default=None, repr=False)

    @property
    def ue_id(self) -> str:
        """The UE ID used for authorization: the SUPI when the AAnF sent one, else the GPSI."""
        if self.supi is not None:
            return self.supi
        if self.gpsi is not None:
            return self.gpsi
        raise ValueError("the AAnF returned neither SUPI nor GPSI for this K_AF")

    def expired(self, now: float) -> bool:
        """Return True when `now` (seconds since the epoch) is at or after the expiry."""
        return now >= self.expiry.timestamp()


class SharedKafLayer(Protocol):
    """K_AF entries shared by server instances (second cache level), e.g. in Redis.

    Both methods handle their own backend errors: `get` then returns None and
    `put` stores nothing, so a failing layer only costs AAnF requests.
    """

    async def get(self, a_kid: str, af_id_value: bytes) -> KafEntry | None: ...

    async def put(self, entry: KafEntry) -> None: ...

    async def aclose(self) -> None: ...


class KafCache:
    """K_AF entries per (A-KID, AF_ID), each dropped at its expiry.

    `clock` returns seconds since the epoch, as `time.time` does; expiries from the
    AAnF are absolute times, so the cache compares them with wall-clock time.
    `shared`, when set, is the second level that other server instances also read.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        max_entries: int = DEFAULT_MAX_CACHE_ENTRIES,
        shared: SharedKafLayer | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.clock = clock
        self.shared = shared
        self._max_entries = max_entries
        self._entries: dict[tuple[str, bytes], KafEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, a_kid: str, af_id_value: bytes) -> KafEntry | None:
        """Return the live entry, dropping it first if it has expired."""
        key = (a_kid, af_id_value)
        entry = self._entries.get(key)
        if entry is not None and entry.expired(self.clock()):
            del self._entries[key]
            return None
        return entry

    def put(self, entry: KafEntry) -> None:
        if len(self._entries) >= self._max_entries:
            self._drop_expired()
        if len(self._entries) >= self._max_entries:
            # Dicts keep insertion order, so this drops the oldest entry.
            self._entries.pop(next(iter(self._entries)))
        self._entries[(entry.a_kid, entry.af_id)] = entry

    async def load_shared(self, a_kid: str, af_id_value: bytes) -> KafEntry | None:
        """Copy a live entry from the shared layer into the dict and return it (async path only)."""
        if self.shared is None:
            return None
        entry = await self.shared.get(a_kid, af_id_value)
        if entry is None or entry.expired(self.clock()):
            return None
        self.put(entry)
        return entry

    async def share(self, entry: KafEntry) -> None:
        """Write the entry to the shared layer, when there is one."""
        if self.shared is not None:
            await self.shared.put(entry)

    async def aclose(self) -> None:
        """Close the shared layer's connection, when there is one."""
        if self.shared is not None:
            await self.shared.aclose()

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [key for key, entry in self._entries.items() if entry.expired(now)]:
            del self._entries[key]


class AanfError(Exception):
    """K_AF could not be obtained from the AAnF for a reason other than an unknown A-KID."""


class AanfClient:
    """Consumer of Naanf_AKMA_ApplicationKey_Get over HTTP/2 (h2c).

    With `token`, every request carries its bearer token, for an AAnF that
    verifies tokens (its `oauth` setting).
    """

    def __init__(self, sbi: SbiClient, token: SelfIssuedToken | None = None) -> None:
        self._sbi = sbi
        self._token = token

    async def retrieve_application_key(
        self, a_kid: str, fqdn: str, ua_protocol_id: bytes = UA_TLS13
    ) -> KafEntry | None:
        """Return K_AF for AF_ID = `fqdn` || `ua_protocol_id`, or None on 204."""
        request = AkmaAfKeyRequest(af_id=af_id_to_wire(fqdn, ua_protocol_id), a_kid=a_kid)
        try:
            response = await self._sbi.call(
                "POST",
                RETRIEVE_APPLICATION_KEY_PATH,
                body=request,
                response_type=AkmaAfKeyData,
                headers=self._token.headers() if self._token is not None else None,
            )
        except SbiProblemError as error:
            raise AanfError(f"AAnF rejected the K_AF request: {error}") from error
        except SbiClientError as error:
            raise AanfError(f"AAnF request failed: {error}") from error

        if response.status == 204 or response.body is None:
            return None
        return _entry_from_key_data(a_kid, af_id(fqdn, ua_protocol_id), response.body)


NEF_RETRIEVE_PATH = "/3gpp-akma/v1/retrieve"
NEF_TOKEN_PATH = "/oauth2/token"
NEF_SCOPES = "3gpp-akma nnef-akma:gpsi-access"
# A cached access token is renewed this many seconds before it expires.
TOKEN_RENEW_MARGIN_SECONDS = 30


class NefError(AanfError):
    """K_AF could not be obtained through the NEF (token refused, request rejected or failed)."""


@dataclasses.dataclass
class _AccessToken:
    value: str = dataclasses.field(repr=False)
    expires_at: float


class NefClient:
    """Consumer of the NEF's 3gpp-akma API with OAuth 2.0 client credentials, over HTTP/2 (h2c).

    Has the `retrieve_application_key` contract of AanfClient, so KafProvider
    uses either. Call `aclose()` when done.
    """

    def __init__(
        self,
        base_uri: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 5.0,
        scopes: str = NEF_SCOPES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_uri = check_base_uri(base_uri)
        self._client = httpx.AsyncClient(base_url=self.base_uri, http1=False, http2=True, timeout=timeout)
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._clock = clock
        self._token: _AccessToken | None = None
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"NefClient({self.base_uri!r}, client_id={self._client_id!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def retrieve_application_key(
        self, a_kid: str, fqdn: str, ua_protocol_id: bytes = UA_TLS13
    ) -> KafEntry | None:
        """Return K_AF for AF_ID = `fqdn` || `ua_protocol_id` with the GPSI, or None on 204."""
        request = AkmaAfKeyRequest(af_id=af_id_to_wire(fqdn, ua_protocol_id), a_kid=a_kid)
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)

        response = await self._post_retrieve(body, await self._access_token())
        if response.status_code == 401:
            # The NEF may have restarted with another key: one retry with a new token.
            self._token = None
            response = await self._post_retrieve(body, await self._access_token())

        if response.status_code >= 300:
            problem = SbiProblemError(response.status_code, parse_problem(response))
            raise NefError(f"NEF rejected the K_AF request: {problem}")
        if response.status_code == 204:
            return None
        try:
            data = AkmaAfKeyData.model_validate_json(response.content)
        except ValidationError as error:
            raise NefError(
                f"NEF responded with an AkmaAfKeyData that does not match the API ({error.error_count()} error(s))"
            ) from None
        return _entry_from_key_data(a_kid, af_id(fqdn, ua_protocol_id), data)

    async def _post_retrieve(self, body: dict, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self._send("POST", NEF_RETRIEVE_PATH, json=body, headers=headers)

    async def _access_token(self) -> str:
        async with self._token_lock:
            now = self._clock()
            if self._token is None or now >= self._token.expires_at - TOKEN_RENEW_MARGIN_SECONDS:
                self._token = await self._request_token(now)
            return self._token.value

    async def _request_token(self, now: float) -> _AccessToken:
        # RFC 6749 clause 2.3.1: id and secret are form-urlencoded, then sent with HTTP Basic.
        credentials = f"{quote_plus(self._client_id)}:{quote_plus(self._client_secret)}"
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii")}
        form = {"grant_type": "client_credentials", "scope": self._scopes}
        response = await self._send("POST", NEF_TOKEN_PATH, data=form, headers=headers)

        if response.status_code != 200:
            raise NefError(f"NEF token endpoint rejected client {self._client_id}: {token_error(response)}")
        try:
            document = response.json()
            token, lifetime = str(document["access_token"]), int(document.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise NefError("NEF token endpoint sent a response without access_token") from None
        if document.get("token_type", "").lower() != "bearer":
            raise NefError(f"NEF issued a token of type {document.get('token_type')!r}, not Bearer")
        logger.debug("got an access token from the NEF for %d s", lifetime)
        return _AccessToken(token, now + lifetime)

    async def _send(self, method: str, path: str, **options) -> httpx.Response:
        try:
            return await self._client.request(method, path, **options)
        except httpx.TimeoutException:
            raise NefError(f"request to {self.base_uri} timed out") from None
        except httpx.HTTPError as error:
            raise NefError(f"{self.base_uri} is unreachable ({type(error).__name__}: {error})") from None


def token_error(response: httpx.Response) -> str:
    """Describe an RFC 6749 error response (AccessTokenErr), e.g. '401 invalid_client: ...'."""
    try:
        document = response.json()
        return f"{response.status_code} {document['error']}: {document.get('error_description', '')}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without an OAuth error body"


class KafSource(Protocol):
    """Source of K_AF for KafProvider: AanfClient (the AAnF directly) or NefClient (through the NEF)."""

    async def retrieve_application_key(
        self, a_kid: str, fqdn: str, ua_protocol_id: bytes = UA_TLS13
    ) -> KafEntry | None: ...


def _entry_from_key_data(a_kid: str, af_id_value: bytes, data: AkmaAfKeyData) -> KafEntry:
    if data.supi is None and data.gpsi is None:
        raise AanfError("AAnF returned K_AF without a SUPI or GPSI, so the UE cannot be authorized")

    expiry = data.expiry if data.expiry.tzinfo else data.expiry.replace(tzinfo=UTC)
    return KafEntry(
        a_kid=a_kid,
        af_id=af_id_value,
        k_af=data.kaf,
        expiry=expiry,
        supi=data.supi,
        gpsi=data.gpsi,
    )


class KafProvider:
    """K_AF for this AF: from the cache, else from the AAnF, one request per key at a time.

    Each Ua* security protocol gives its own AF_ID (FQDN || Ua* protocol
    identifier), so the same A-KID yields a different K_AF per protocol, and for
    TLS 1.2 per negotiated cipher suite. The default is shared-key TLS 1.3.
    """

    def __init__(self, fqdn: str, aanf: KafSource, cache: KafCache | None = None) -> None:
        self.fqdn = fqdn
        self.af_id = af_id(fqdn, UA_TLS13)
        self.cache = cache if cache is not None else KafCache()
        self._aanf = aanf
        self._in_flight: dict[tuple[str, bytes], asyncio.Task[KafEntry | None]] = {}

    def lookup(self, a_kid: str, ua_protocol_id: bytes = UA_TLS13) -> KafEntry | None:
        """Return the cached, unexpired entry; never does I/O (safe in the PSK callback)."""
        return self.cache.get(a_kid, af_id(self.fqdn, ua_protocol_id))

    async def obtain(self, a_kid: str, ua_protocol_id: bytes = UA_TLS13) -> KafEntry | None:
        """Return K_AF for `a_kid`, asking the AAnF on a cache miss; None when it is unknown.

        Raises AanfError when the AAnF cannot be reached or responds with an error.
        """
        entry = self.lookup(a_kid, ua_protocol_id)
        if entry is not None:
            return entry

        key = (a_kid, ua_protocol_id)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._fetch(a_kid, ua_protocol_id), name=f"retrieve K_AF {a_kid}"
            )
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a caller that gives up (handshake timeout) must not cancel the
        # request that other connections with the same A-KID are waiting for.
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel the AAnF requests still in flight (on server shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, key: tuple[str, bytes], task: asyncio.Task[KafEntry | None]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # Marks the exception as retrieved when no caller is left.

    async def _fetch(self, a_kid: str, ua_protocol_id: bytes) -> KafEntry | None:
        shared = await self.cache.load_shared(a_kid, af_id(self.fqdn, ua_protocol_id))
        if shared is not None:
            logger.debug("K_AF for A-KID %s came from the shared cache", a_kid)
            return shared

        entry = await self._aanf.retrieve_application_key(a_kid, self.fqdn, ua_protocol_id)
        if entry is None:
            logger.debug("AAnF has no AKMA context for A-KID %s", a_kid)
            return None

        if entry.expired(self.cache.clock()):
            raise AanfError(f"AAnF returned a K_AF that expired at {entry.expiry.isoformat()}")
        self.cache.put(entry)
        await self.cache.share(entry)
        logger.debug(
            "cached K_AF for A-KID %s, UE ID %s, until %s", a_kid, entry.ue_id, entry.expiry.isoformat()
        )
        return entry

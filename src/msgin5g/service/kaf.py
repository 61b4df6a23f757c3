"""K_AF for the MSGin5G Server as AKMA AF: the AAnF consumer and the K_AF cache.

The AF requests K_AF from the AAnF with the A-KID that the UE sent and its own AF_ID
(Naanf_AKMA_ApplicationKey_Get, TS 33.535 clause 7.1.3; TS 29.535
POST /naanf-akma/v1/retrieve-applicationkey). The AAnF returns K_AF, its expiry
and the UE ID (SUPI, or GPSI), or 204 when it has no AKMA context for the
A-KID.

`KafProvider.obtain` is the asynchronous path used before the TLS handshake
continues; `KafProvider.lookup` is the synchronous, cache-only path used inside
OpenSSL's PSK callback. The cache keeps each entry per (A-KID, AF_ID) until its
expiry and drops it then, so an expired K_AF is fetched again.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire
from msgin5g.sbi.client import SbiClient, SbiClientError, SbiProblemError
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


class KafCache:
    """K_AF entries per (A-KID, AF_ID), each dropped at its expiry.

    `clock` returns seconds since the epoch, as `time.time` does; expiries from the
    AAnF are absolute times, so the cache compares them with wall-clock time.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        max_entries: int = DEFAULT_MAX_CACHE_ENTRIES,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.clock = clock
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

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [key for key, entry in self._entries.items() if entry.expired(now)]:
            del self._entries[key]


class AanfError(Exception):
    """K_AF could not be obtained from the AAnF for a reason other than an unknown A-KID."""


class AanfClient:
    """Consumer of Naanf_AKMA_ApplicationKey_Get over HTTP/2 (h2c)."""

    def __init__(self, sbi: SbiClient) -> None:
        self._sbi = sbi

    async def retrieve_application_key(
        self, a_kid: str, fqdn: str, ua_protocol_id: bytes = UA_TLS13
    ) -> KafEntry | None:
        """Return K_AF for AF_ID = `fqdn` || `ua_protocol_id`, or None on 204."""
        request = AkmaAfKeyRequest(af_id=af_id_to_wire(fqdn, ua_protocol_id), a_kid=a_kid)
        try:
            response = await self._sbi.call(
                "POST", RETRIEVE_APPLICATION_KEY_PATH, body=request, response_type=AkmaAfKeyData
            )
        except SbiProblemError as error:
            raise AanfError(f"AAnF rejected the K_AF request: {error}") from error
        except SbiClientError as error:
            raise AanfError(f"AAnF request failed: {error}") from error

        if response.status == 204 or response.body is None:
            return None
        return _entry_from_key_data(a_kid, af_id(fqdn, ua_protocol_id), response.body)


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

    def __init__(self, fqdn: str, aanf: AanfClient, cache: KafCache | None = None) -> None:
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
        entry = await self._aanf.retrieve_application_key(a_kid, self.fqdn, ua_protocol_id)
        if entry is None:
            logger.debug("AAnF has no AKMA context for A-KID %s", a_kid)
            return None

        if entry.expired(self.cache.clock()):
            raise AanfError(f"AAnF returned a K_AF that expired at {entry.expiry.isoformat()}")
        self.cache.put(entry)
        logger.debug(
            "cached K_AF for A-KID %s, UE ID %s, until %s", a_kid, entry.ue_id, entry.expiry.isoformat()
        )
        return entry

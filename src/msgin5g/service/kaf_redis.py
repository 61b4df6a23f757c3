"""K_AF entries shared by MSGin5G Server instances through Redis (second cache level).

One string key per (A-KID, AF_ID), `<prefix>:kaf:{<A-KID>}:<AF_ID in hex>`,
holding JSON {k_af (hex), expiry (ISO 8601), supi, gpsi} and expiring at the
K_AF expiry (PXAT). The hash tag is the A-KID, so every K_AF of one A-KID
lives on one cluster node.

NOTE: the keys hold K_AF in clear, so the Redis must be reachable only by the
AF instances (ACL user and password in the URL, rediss:// for TLS).
"""

import json
import logging
from datetime import datetime

from msgin5g.service.kaf import KafEntry
from msgin5g.store.redis import CONNECT_ERRORS, RedisConnection, StoreSelection, text

logger = logging.getLogger(__name__)


class RedisKafLayer:
    """The shared K_AF layer for `KafCache(shared=...)` on Redis or Redis Cluster."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection

    @classmethod
    async def open(cls, selection: StoreSelection) -> "RedisKafLayer":
        return cls(await RedisConnection.open(selection))

    def _key(self, a_kid: str, af_id_value: bytes) -> str:
        return self._keys.key("kaf", a_kid, ":" + af_id_value.hex())

    async def get(self, a_kid: str, af_id_value: bytes) -> KafEntry | None:
        """Return the shared entry, or None when it is missing or Redis fails (logged)."""
        try:
            value = await self._redis.get(self._key(a_kid, af_id_value))
        except CONNECT_ERRORS as error:
            logger.warning("shared K_AF cache at %s failed on read: %s", self._connection.where, error)
            return None
        if value is None:
            return None
        document = json.loads(text(value))
        return KafEntry(
            a_kid=a_kid,
            af_id=af_id_value,
            k_af=bytes.fromhex(document["k_af"]),
            expiry=datetime.fromisoformat(document["expiry"]),
            supi=document.get("supi"),
            gpsi=document.get("gpsi"),
        )

    async def put(self, entry: KafEntry) -> None:
        """Store the entry until its expiry; log and drop it when Redis fails."""
        document = {"k_af": entry.k_af.hex(), "expiry": entry.expiry.isoformat(), "supi": entry.supi, "gpsi": entry.gpsi}
        expiry_ms = int(entry.expiry.timestamp() * 1000)
        try:
            await self._redis.set(self._key(entry.a_kid, entry.af_id), json.dumps(document), pxat=expiry_ms)
        except CONNECT_ERRORS as error:
            logger.warning("shared K_AF cache at %s failed on write: %s", self._connection.where, error)

    async def aclose(self) -> None:
        await self._connection.close()

"""AKMA contexts of the AAnF on Redis or Redis Cluster.

Two keys per UE, both expiring at the context's expiry (PXAT), so Redis drops
a context when its lifetime ends:

- `<prefix>:aanf:ctx:{<A-KID>}`: hash with supi, gpsi, k_akma, expires_at;
- `<prefix>:aanf:ue:{<UE ID>}`: string, the UE's latest A-KID.

The two keys hash to different cluster slots. The UE key is the authority on
which context is the latest: `find` returns a context only when the UE key of
its UE still names its A-KID. So an older A-KID yields nothing as soon as
the new A-KID is set on the UE key, even if deleting the older context
failed or raced with a concurrent registration of the same UE.
"""

from pathlib import Path

from redis.commands.core import AsyncScript

from msgin5g.nf.aanf.store import AkmaContext, AkmaContextStore, SqliteAkmaContextStore
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text


# Deletes the context only when it still belongs to the SUPI: another UE may
# have registered the same A-KID since.
DELETE_IF_SUPI = """
if redis.call('HGET', KEYS[1], 'supi') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisAkmaContextStore(AkmaContextStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._delete_if_supi: AsyncScript = self._redis.register_script(DELETE_IF_SUPI)

    def _context_key(self, a_kid: str) -> str:
        return self._keys.key("aanf:ctx", a_kid)

    def _ue_key(self, ue_id: str) -> str:
        return self._keys.key("aanf:ue", ue_id)

    async def register(self, context: AkmaContext, now: float) -> None:
        # An expiry in the past makes Redis delete the keys at once, which still
        # replaces the UE's earlier context, as the SQLite store does.
        expires_ms = int(context.expires_at * 1000)
        mapping = {"k_akma": context.k_akma, "expires_at": repr(context.expires_at)}
        if context.supi is not None:
            mapping["supi"] = context.supi
        if context.gpsi is not None:
            mapping["gpsi"] = context.gpsi

        # The context first, then the UE key that makes it the latest one.
        context_key = self._context_key(context.a_kid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(context_key)
            pipe.hset(context_key, mapping=mapping)
            pipe.pexpireat(context_key, expires_ms)
            await pipe.execute()
        previous = await self._redis.set(self._ue_key(context.ue_id), context.a_kid, pxat=expires_ms, get=True)

        if previous is not None and text(previous) != context.a_kid:
            await self._redis.delete(self._context_key(text(previous)))

    async def find(self, a_kid: str, now: float) -> AkmaContext | None:
        fields = await self._redis.hgetall(self._context_key(a_kid))
        if not fields:
            return None
        context = AkmaContext(
            a_kid=a_kid,
            supi=text(fields.get(b"supi")),
            gpsi=text(fields.get(b"gpsi")),
            k_akma=bytes(fields[b"k_akma"]),
            expires_at=float(fields[b"expires_at"]),
        )
        if context.expires_at <= now:
            return None

        latest = await self._redis.get(self._ue_key(context.ue_id))
        if latest is None or text(latest) != a_kid:
            return None
        return context

    async def remove(self, supi: str) -> bool:
        a_kid = await self._redis.getdel(self._ue_key(supi))
        if a_kid is None:
            return False
        deleted = await self._delete_if_supi(keys=[self._context_key(text(a_kid))], args=[supi])
        return deleted > 0

    async def close(self) -> None:
        await self._connection.close()


async def open_context_store(selection: StoreSelection, database: Path | None) -> AkmaContextStore:
    """Open the AKMA context store on the backend that `selection` names."""
    return await open_store(
        selection, database, sqlite=SqliteAkmaContextStore.open, redis=RedisAkmaContextStore
    )

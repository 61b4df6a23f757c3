"""Pending 5G AKA contexts of the AUSF on Redis or Redis Cluster.

- `<prefix>:ausf:ctx:{<authCtxId>}`: hash with the context's fields, expiring
  at the context's expiry (PXAT), so Redis drops unconfirmed contexts itself;
- `<prefix>:ausf:supi:{<SUPI>}`: set of the SUPI's authCtxIds, for the purge
  on deregistration, expiring with the latest context added to it.

`take` reads and deletes the context hash in one Lua script, so each context
is confirmed at most once, even with several AUSF instances. The set may
keep the ids of contexts already taken or expired, and `purge_supi` counts
only the contexts it actually deleted.
"""

from pathlib import Path

from redis.commands.core import AsyncScript

from msgin5g.nf.ausf.store import AuthContext, AuthContextStore, SqliteAuthContextStore
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text

FIELDS = (
    "supi", "serving_network_name", "rand", "xres_star", "k_ausf", "akma_ind", "routing_id", "expires_at",
)

# Returns the fields in FIELDS order and deletes the hash; nil when it is missing.
TAKE = f"""
local values = redis.call('HMGET', KEYS[1], {", ".join(repr(name) for name in FIELDS)})
if values[1] == false then
    return nil
end
redis.call('DEL', KEYS[1])
return values
"""

# Adds ARGV[1] to the set and makes the set live at least until ARGV[2] (ms).
ADD_TO_INDEX = """
redis.call('SADD', KEYS[1], ARGV[1])
local expiry = tonumber(ARGV[2])
local current = redis.call('PEXPIRETIME', KEYS[1])
if current < expiry then
    redis.call('PEXPIREAT', KEYS[1], expiry)
end
return 1
"""

# Returns the members of the set and deletes it, in one step.
POP_INDEX = """
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
"""


class RedisAuthContextStore(AuthContextStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._take: AsyncScript = self._redis.register_script(TAKE)
        self._add_to_index: AsyncScript = self._redis.register_script(ADD_TO_INDEX)
        self._pop_index: AsyncScript = self._redis.register_script(POP_INDEX)

    def _context_key(self, auth_ctx_id: str) -> str:
        return self._keys.key("ausf:ctx", auth_ctx_id)

    def _supi_key(self, supi: str) -> str:
        return self._keys.key("ausf:supi", supi)

    async def add(self, context: AuthContext, now: float) -> None:
        expires_ms = int(context.expires_at * 1000)
        mapping: dict[str, bytes | str] = {
            "supi": context.supi,
            "serving_network_name": context.serving_network_name,
            "rand": context.rand,
            "xres_star": context.xres_star,
            "k_ausf": context.k_ausf,
            "akma_ind": "1" if context.akma_ind else "0",
            "expires_at": repr(context.expires_at),
        }
        if context.routing_id is not None:
            mapping["routing_id"] = context.routing_id

        key = self._context_key(context.auth_ctx_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.pexpireat(key, expires_ms)
            await pipe.execute()
        await self._add_to_index(keys=[self._supi_key(context.supi)], args=[context.auth_ctx_id, expires_ms])

    async def take(self, auth_ctx_id: str, now: float) -> AuthContext | None:
        values = await self._take(keys=[self._context_key(auth_ctx_id)])
        if not values:
            return None
        context = context_from_fields(auth_ctx_id, values)
        await self._redis.srem(self._supi_key(context.supi), auth_ctx_id)
        return context if context.expires_at > now else None

    async def discard(self, auth_ctx_id: str) -> bool:
        return await self._redis.delete(self._context_key(auth_ctx_id)) > 0

    async def purge_supi(self, supi: str) -> int:
        members = await self._pop_index(keys=[self._supi_key(supi)])
        removed = 0
        for member in members:
            removed += await self._redis.delete(self._context_key(text(member)))
        return removed

    async def close(self) -> None:
        await self._connection.close()


def context_from_fields(auth_ctx_id: str, values: list) -> AuthContext:
    supi, snn, rand, xres_star, k_ausf, akma_ind, routing_id, expires_at = values
    return AuthContext(
        auth_ctx_id=auth_ctx_id,
        supi=text(supi),
        serving_network_name=text(snn),
        rand=bytes(rand),
        xres_star=bytes(xres_star),
        k_ausf=bytes(k_ausf),
        akma_ind=akma_ind == b"1",
        routing_id=text(routing_id),
        expires_at=float(expires_at),
    )


async def open_auth_context_store(selection: StoreSelection, database: Path | None) -> AuthContextStore:
    """Open the 5G AKA context store on the backend that `selection` names."""
    return await open_store(selection, database, sqlite=SqliteAuthContextStore.open, redis=RedisAuthContextStore)

"""Subscriber data of the UDM/ARPF on Redis or Redis Cluster.

One hash per subscriber, `<prefix>:udm:sub:{<SUPI>}`, with the fields gpsi, k,
opc, amf, sqn, akma_allowed and routing_indicator. The SQN advance and the
resynchronisation each run as one Lua script on that one key, so Redis
executes the read, the increment and the write without any other command in
between: UDM processes that share the Redis never hand out the same SQN.

Lua numbers are IEEE doubles, exact up to 2^53, so the 48-bit SQN arithmetic
is exact. The scripts compute (SEQ + 1) || IND=0 with divisions, because
Redis's Lua has no 64-bit bit operations.
"""

from pathlib import Path

from redis.commands.core import AsyncScript

from msgin5g.nf.udm.store import IND_BITS, SQN_MAX, SqliteSubscriberStore, Subscriber, SubscriberStore
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text

FIELDS = ("gpsi", "k", "opc", "amf", "sqn", "akma_allowed", "routing_indicator")

# ARGV[1]: the SQN to advance from, or '' for the stored one. Returns the
# fields in FIELDS order with the new SQN, or nil for an unknown SUPI.
ADVANCE_SQN = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then
    return nil
end
local sqn = tonumber(ARGV[1])
if sqn == nil then
    sqn = tonumber(redis.call('HGET', KEYS[1], 'sqn'))
end
local ind_range = {1 << IND_BITS}
local next_sqn = ((math.floor(sqn / ind_range) + 1) * ind_range) % {SQN_MAX + 1}
redis.call('HSET', KEYS[1], 'sqn', string.format('%d', next_sqn))
return redis.call('HMGET', KEYS[1], {", ".join(repr(name) for name in FIELDS)})
"""

# Replaces the whole hash in one step, so that a reader never sees the
# subscriber missing or half written. ARGV: field, value, field, value, ...
REPLACE_SUBSCRIBER = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


class RedisSubscriberStore(SubscriberStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._advance: AsyncScript = self._redis.register_script(ADVANCE_SQN)
        self._replace: AsyncScript = self._redis.register_script(REPLACE_SUBSCRIBER)

    def _key(self, supi: str) -> str:
        return self._keys.key("udm:sub", supi)

    async def upsert(self, subscriber: Subscriber) -> None:
        """Insert a subscriber, or replace every field of an existing SUPI (provisioning).

        Raises ValueError for the field lengths that the SQLite table rejects.
        """
        check_subscriber(subscriber)
        mapping: dict[str, bytes | str] = {
            "k": subscriber.k,
            "opc": subscriber.opc,
            "amf": subscriber.amf,
            "sqn": str(subscriber.sqn),
            "akma_allowed": "1" if subscriber.akma_allowed else "0",
            "routing_indicator": subscriber.routing_indicator,
        }
        if subscriber.gpsi is not None:
            mapping["gpsi"] = subscriber.gpsi
        arguments = [item for pair in mapping.items() for item in pair]
        await self._replace(keys=[self._key(subscriber.supi)], args=arguments)

    async def find(self, supi: str) -> Subscriber | None:
        values = await self._redis.hmget(self._key(supi), list(FIELDS))
        return subscriber_from_fields(supi, values)

    async def advance_sqn(self, supi: str) -> Subscriber | None:
        values = await self._advance(keys=[self._key(supi)], args=[""])
        return subscriber_from_fields(supi, values)

    async def resynchronize_sqn(self, supi: str, sqn_ms: int) -> Subscriber | None:
        if not 0 <= sqn_ms <= SQN_MAX:
            raise ValueError(f"SQN_MS {sqn_ms} is outside 0..{SQN_MAX} (48 bits)")
        values = await self._advance(keys=[self._key(supi)], args=[str(sqn_ms)])
        return subscriber_from_fields(supi, values)

    async def close(self) -> None:
        await self._connection.close()


def check_subscriber(subscriber: Subscriber) -> None:
    """Raise ValueError naming the field when K, OPc, AMF or SQN has the wrong size."""
    for name, value, size in (("k", subscriber.k, 16), ("opc", subscriber.opc, 16), ("amf", subscriber.amf, 2)):
        if len(value) != size:
            raise ValueError(f"subscriber {name} must be {size} octets, got {len(value)}")
    if not 0 <= subscriber.sqn <= SQN_MAX:
        raise ValueError(f"subscriber sqn {subscriber.sqn} is outside 0..{SQN_MAX} (48 bits)")


def subscriber_from_fields(supi: str, values: list | None) -> Subscriber | None:
    """Build a Subscriber from HMGET values in FIELDS order; None when the hash is missing."""
    if not values or values[1] is None:
        return None
    gpsi, k, opc, amf, sqn, akma_allowed, routing_indicator = values
    return Subscriber(
        supi=supi,
        gpsi=text(gpsi),
        k=bytes(k),
        opc=bytes(opc),
        amf=bytes(amf),
        sqn=int(sqn),
        akma_allowed=akma_allowed == b"1",
        routing_indicator=text(routing_indicator),
    )


async def open_subscriber_store(selection: StoreSelection, database: Path | None) -> SubscriberStore:
    """Open the subscriber store on the backend that `selection` names."""
    return await open_store(selection, database, sqlite=SqliteSubscriberStore.open, redis=RedisSubscriberStore)

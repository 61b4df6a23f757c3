"""UE service ID associations of the SEAL CM server on Redis or Redis Cluster.

- `<prefix>:cm:sid:{<UE service ID>}`: hash with every field of `Association`
  except the UE service ID (today ue_id and relation);
- `<prefix>:cm:ue:{<UE ID>}`: set of the UE service IDs of that UE ID.

The set is an index only: `find_by_ue_id` keeps a member only when its hash
still names that UE ID, so an association moved to another UE ID never shows
under the old one, even between the writes of `upsert`. The two keys hash to
different slots, so `upsert` takes four steps. It adds the index member,
replaces the hash in one Lua script that returns the previous UE ID, and
removes the member from that UE ID's index. Then it adds the member to the
index of the UE ID that the hash names at that moment, so that a concurrent
upsert's member is never lost. A stop in between leaves at most a stale
member, which the readers skip.
"""

import dataclasses
from pathlib import Path

from redis.commands.core import AsyncScript

from msgin5g.nf.cm.store import Association, AssociationStore, SqliteAssociationStore, check_relation
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text

# The hash fields: every Association field but the key itself.
FIELDS = tuple(field.name for field in dataclasses.fields(Association) if field.name != "ue_service_id")

# Replaces the hash with the field-value pairs in ARGV; returns the previous ue_id, or nil.
REPLACE = """
local previous = redis.call('HGET', KEYS[1], 'ue_id')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return previous
"""


class RedisAssociationStore(AssociationStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._replace: AsyncScript = self._redis.register_script(REPLACE)

    def _service_key(self, ue_service_id: str) -> str:
        return self._keys.key("cm:sid", ue_service_id)

    def _ue_key(self, ue_id: str) -> str:
        return self._keys.key("cm:ue", ue_id)

    async def upsert(self, association: Association) -> None:
        """Insert an association, or point an existing UE service ID at a new UE ID (provisioning)."""
        check_relation(association.relation)
        pairs = [part for name in FIELDS for part in (name, str(getattr(association, name)))]

        await self._redis.sadd(self._ue_key(association.ue_id), association.ue_service_id)
        previous = text(await self._replace(keys=[self._service_key(association.ue_service_id)], args=pairs))
        if previous is not None and previous != association.ue_id:
            await self._redis.srem(self._ue_key(previous), association.ue_service_id)
            # A concurrent upsert may have pointed the hash back at `previous`
            # after this script ran: index the UE ID that the hash names now.
            owner = text(await self._redis.hget(self._service_key(association.ue_service_id), "ue_id"))
            if owner is not None:
                await self._redis.sadd(self._ue_key(owner), association.ue_service_id)

    async def find_by_ue_id(self, ue_id: str) -> list[Association]:
        members = sorted(text(member) for member in await self._redis.smembers(self._ue_key(ue_id)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for ue_service_id in members:
                pipe.hmget(self._service_key(ue_service_id), list(FIELDS))
            rows = await pipe.execute() if members else []

        associations = []
        for ue_service_id, values in zip(members, rows):
            association = association_from_fields(ue_service_id, values)
            if association is not None and association.ue_id == ue_id:
                associations.append(association)
        return associations

    async def find_by_ue_service_id(self, ue_service_id: str) -> list[Association]:
        association = await self._get(ue_service_id)
        return [] if association is None else [association]

    async def _get(self, ue_service_id: str) -> Association | None:
        values = await self._redis.hmget(self._service_key(ue_service_id), list(FIELDS))
        return association_from_fields(ue_service_id, values)

    async def close(self) -> None:
        await self._connection.close()


def association_from_fields(ue_service_id: str, values: list) -> Association | None:
    """Build an Association from HMGET values in FIELDS order; None when the hash is missing."""
    if values[FIELDS.index("ue_id")] is None:
        return None
    # A field missing from an older hash takes the dataclass default.
    present = {name: text(value) for name, value in zip(FIELDS, values) if value is not None}
    return Association(ue_service_id=ue_service_id, **present)


async def open_association_store(selection: StoreSelection, database: Path | None) -> AssociationStore:
    """Open the association store on the backend that `selection` names."""
    return await open_store(selection, database, sqlite=SqliteAssociationStore.open, redis=RedisAssociationStore)

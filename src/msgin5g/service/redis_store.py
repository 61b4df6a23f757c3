"""Registrations of the MSGin5G Server on Redis or Redis Cluster.

- `<prefix>:reg:sid:{<UE service ID>}`: hash with ue_id, client_profile (JSON)
  and registered_at (ISO 8601);
- `<prefix>:reg:ue:{<UE ID>}`: set of the UE service IDs that UE ID registered.

REG and DEREG each change the hash in one Lua script (DEREG only for the UE
ID that registered), then update the set. The set is an index only:
`list_by_ue_id` keeps a member only when its hash still names that UE ID.
The two keys hash to different slots. So after removing a member from a set,
REG and DEREG add the UE service ID to the set of the UE ID that the hash
names at that moment, and a concurrent REG's member is never lost. At worst
a stale member stays, which `list_by_ue_id` skips.
Registrations have no TTL, as in the SQLite table.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from redis.commands.core import AsyncScript

from msgin5g.service.store import Registration, RegistrationStore, SqliteRegistrationStore
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text

FIELDS = ("ue_id", "client_profile", "registered_at")

# Replaces the hash; returns the UE ID that had registered it before, or nil.
REGISTER = """
local previous = redis.call('HGET', KEYS[1], 'ue_id')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ue_id', ARGV[1], 'registered_at', ARGV[2])
if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[1], 'client_profile', ARGV[3])
end
return previous
"""

# Deletes the hash only when ARGV[1] registered it; returns 1 when it did.
DEREGISTER = """
if redis.call('HGET', KEYS[1], 'ue_id') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisRegistrationStore(RegistrationStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._register: AsyncScript = self._redis.register_script(REGISTER)
        self._deregister: AsyncScript = self._redis.register_script(DEREGISTER)

    def _service_key(self, ue_service_id: str) -> str:
        return self._keys.key("reg:sid", ue_service_id)

    def _ue_key(self, ue_id: str) -> str:
        return self._keys.key("reg:ue", ue_id)

    async def open(self) -> Self:
        return self

    async def close(self) -> None:
        await self._connection.close()

    async def register(
        self, ue_service_id: str, ue_id: str, client_profile: dict[str, Any] | None
    ) -> bool:
        profile_text = json.dumps(client_profile) if client_profile is not None else ""
        now = datetime.now(UTC).isoformat()
        previous = await self._register(
            keys=[self._service_key(ue_service_id)], args=[ue_id, now, profile_text]
        )

        await self._redis.sadd(self._ue_key(ue_id), ue_service_id)
        if previous is not None and text(previous) != ue_id:
            await self._redis.srem(self._ue_key(text(previous)), ue_service_id)
            await self._index_owner(ue_service_id)
        return previous is None

    async def deregister(self, ue_service_id: str, ue_id: str) -> bool:
        deleted = await self._deregister(keys=[self._service_key(ue_service_id)], args=[ue_id])
        if deleted:
            await self._redis.srem(self._ue_key(ue_id), ue_service_id)
            await self._index_owner(ue_service_id)
        return deleted > 0

    async def _index_owner(self, ue_service_id: str) -> None:
        """Add the UE service ID to the index of the UE ID that its hash names now.

        Called after each index removal: a concurrent REG may have written the
        hash for that UE ID between this call's script and its SREM, and its
        index member would otherwise be lost.
        """
        owner = text(await self._redis.hget(self._service_key(ue_service_id), "ue_id"))
        if owner is not None:
            await self._redis.sadd(self._ue_key(owner), ue_service_id)

    async def get(self, ue_service_id: str) -> Registration | None:
        values = await self._redis.hmget(self._service_key(ue_service_id), list(FIELDS))
        return registration_from_fields(ue_service_id, values)

    async def list_by_ue_id(self, ue_id: str) -> list[Registration]:
        members = sorted(text(member) for member in await self._redis.smembers(self._ue_key(ue_id)))
        if not members:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for ue_service_id in members:
                pipe.hmget(self._service_key(ue_service_id), list(FIELDS))
            rows = await pipe.execute()

        registrations = []
        for ue_service_id, values in zip(members, rows):
            registration = registration_from_fields(ue_service_id, values)
            if registration is not None and registration.ue_id == ue_id:
                registrations.append(registration)
        return registrations


def registration_from_fields(ue_service_id: str, values: list) -> Registration | None:
    """Build a Registration from HMGET values in FIELDS order; None when the hash is missing."""
    ue_id, profile_text, registered_at = values
    if ue_id is None:
        return None
    return Registration(
        ue_service_id=ue_service_id,
        ue_id=text(ue_id),
        client_profile=json.loads(profile_text) if profile_text is not None else None,
        registered_at=datetime.fromisoformat(text(registered_at)),
    )


async def open_registration_store(selection: StoreSelection, database: Path | None) -> RegistrationStore:
    """Open the registration store on the backend that `selection` names."""

    async def open_sqlite(path: Path) -> RegistrationStore:
        return await SqliteRegistrationStore(path).open()

    return await open_store(selection, database, sqlite=open_sqlite, redis=RedisRegistrationStore)

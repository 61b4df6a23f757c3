"""Two AAnF and two MSGin5G Server processes behind one address each, sharing state in Redis Cluster.

"Behind one address" is a small loopback TCP forwarder in this test. It
listens on one port and hands each new TCP connection to the next instance in
turn (round robin per connection, as an L4 load balancer does). It also
counts the connections each instance got. A forwarder, rather than
SO_REUSEPORT, makes the instance of each connection known in advance, so the
test can state which instance served which step. The CM server sits behind
a forwarder of its own, only so that all processes can start at once.

The flow, with every store (AAnF, CM, server) on one Redis Cluster:

1. the test registers an AKMA context through the AAnF address: connection 1
   lands on AAnF A; AAnF B then returns K_AF for that A-KID;
2. the UE opens a TLS 1.3 PSK channel to the server address: connection 1
   lands on server 1, which gets K_AF from the AAnF address (connection 2,
   AAnF B), writes it to the shared K_AF cache, and accepts the REG;
3. the UE opens a second channel: connection 2 lands on server 2, which
   finds K_AF in the shared cache (no AAnF request) and the registration
   that server 1 stored, so it accepts the DEREG.
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire, format_a_kid, k_af
from msgin5g.deployment.processes import ServiceProcess, start_service, stop_process
from msgin5g.nf.cm.redis_store import RedisAssociationStore
from msgin5g.nf.cm.store import Association
from msgin5g.service.channel import SecureChannel
from msgin5g.store.redis import RedisConnection, StoreSelection

pytestmark = pytest.mark.parametrize("store_backend", ["redis-cluster"])

LOOPBACK = "127.0.0.1"
SUPI = "imsi-001010000000077"
UE_SERVICE_ID = "scale-out-ue-77"
SERVER_FQDN = "msgin5g.scale.example.test"


class Forwarder:
    """Loopback TCP forwarder: each new connection goes to the next backend in turn."""

    def __init__(self) -> None:
        # Set before the first connection arrives.
        self.backends: list[tuple[str, int]] = []
        self.connections: list[int] = []
        self._next = 0
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self._server.sockets[0].getsockname()[:2]

    async def start(self) -> "Forwarder":
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        return self

    async def close(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self._next
        self._next = (self._next + 1) % len(self.backends)
        if not self.connections:
            self.connections = [0] * len(self.backends)
        self.connections[index] += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            backend_reader, backend_writer = await asyncio.open_connection(*self.backends[index])
            await asyncio.gather(pipe(reader, backend_writer), pipe(backend_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def host_port(uri: str) -> tuple[str, int]:
    authority = uri.split("://", 1)[1].split("/", 1)[0]
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port)


def write_config(folder: Path, name: str, document: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def services(folder: Path, configs: dict[str, tuple[str, dict]]) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Start `name: (service, config)` concurrently; stop them all when the block ends."""
    started: dict[str, ServiceProcess] = {}

    async def start(name: str, service: str, document: dict) -> None:
        started[name] = await start_service(name, write_config(folder, name, document), folder, service=service)

    try:
        results = await asyncio.gather(
            *(start(name, service, document) for name, (service, document) in configs.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        yield started
    finally:
        await asyncio.gather(*(stop_process(item.process) for item in started.values()))


def store_document(selection: StoreSelection) -> dict:
    return {"backend": selection.backend, "nodes": selection.nodes, "key_prefix": selection.key_prefix}


async def associate(selection: StoreSelection) -> None:
    store = RedisAssociationStore(await RedisConnection.open(selection))
    try:
        await store.upsert(Association(UE_SERVICE_ID, SUPI))
    finally:
        await store.close()


async def test_two_aanf_and_two_servers_share_redis(store_selection, tmp_path):
    store = store_document(store_selection)
    sbi = {"host": LOOPBACK, "port": 0}
    await associate(store_selection)

    # The forwarders listen first, so that all five processes start at once;
    # each learns its backends once they are ready, before any connection.
    aanf, cm, front = await Forwarder().start(), await Forwarder().start(), await Forwarder().start()
    server = {
        "fqdn": SERVER_FQDN,
        "aanf": {"uri": "http://{}:{}".format(*aanf.address)},
        "cm": {"uri": "http://{}:{}".format(*cm.address)},
        "store": store,
        "listen": {"host": LOOPBACK, "port": 0},
    }
    try:
        async with services(tmp_path, {
            "aanf-a": ("aanf", {"sbi": sbi, "store": store}),
            "aanf-b": ("aanf", {"sbi": sbi, "store": store}),
            "cm": ("cm", {"sbi": sbi, "store": store}),
            "server-1": ("server", server),
            "server-2": ("server", server),
        }) as started:
            aanf.backends = [host_port(started["aanf-a"].uri), host_port(started["aanf-b"].uri)]
            cm.backends = [host_port(started["cm"].uri)]
            front.backends = [host_port(started["server-1"].uri), host_port(started["server-2"].uri)]
            await run_flow(server["aanf"]["uri"], started["aanf-b"].uri, front.address)
    finally:
        for forwarder in (aanf, cm, front):
            await forwarder.close()

    assert aanf.connections == [1, 1], "AAnF A registered the context, AAnF B served K_AF once"
    assert front.connections == [1, 1], "server 1 took the REG, server 2 the DEREG"


async def run_flow(aanf_uri: str, aanf_b_uri: str, server_address: tuple[str, int]) -> None:
    a_kid = format_a_kid("0", os.urandom(32), "001", "01")
    k_akma = os.urandom(32)

    # Step 1: one connection through the AAnF address, so AAnF A registers the context.
    async with httpx.AsyncClient(base_url=aanf_uri, http1=False, http2=True) as client:
        response = await client.post(
            "/naanf-akma/v1/register-anchorkey", json={"supi": SUPI, "aKId": a_kid, "kAkma": k_akma.hex()}
        )
        assert response.status_code == 200, response.text

    # AAnF B, asked on its own address, has the context too.
    async with httpx.AsyncClient(base_url=aanf_b_uri, http1=False, http2=True) as client:
        response = await client.post(
            "/naanf-akma/v1/retrieve-applicationkey",
            json={"afId": af_id_to_wire(SERVER_FQDN, UA_TLS13), "aKId": a_kid},
        )
    assert response.status_code == 200, response.text
    assert response.json()["supi"] == SUPI

    # Steps 2 and 3: REG on server 1, DEREG on server 2.
    key = k_af(k_akma, af_id(SERVER_FQDN, UA_TLS13))
    host, port = server_address
    async with SecureChannel.open(host, port, SERVER_FQDN, a_kid, key) as channel:
        registered = await channel.register(UE_SERVICE_ID)
    async with SecureChannel.open(host, port, SERVER_FQDN, a_kid, key) as channel:
        deregistered = await channel.deregister(UE_SERVICE_ID)
        deregistered_again = await channel.deregister(UE_SERVICE_ID)

    assert registered.accepted, registered.detail
    assert deregistered.accepted, deregistered.detail
    assert not deregistered_again.accepted
    assert deregistered_again.cause == "NOT_REGISTERED"

"""Assemble the AUSF: store, UDM and AAnF consumers, processor and routes, and run it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.ausf.api import ausf_routes
from msgin5g.nf.ausf.config import AusfConfig, load_ausf_config
from msgin5g.nf.ausf.consumer import AanfConsumer, UdmConsumer
from msgin5g.nf.ausf.processor import AusfProcessor
from msgin5g.nf.ausf.redis_store import open_auth_context_store
from msgin5g.nf.config import Peer
from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.sbi.app import create_app
from msgin5g.sbi.client import SbiClient


@asynccontextmanager
async def ausf_app(config: AusfConfig) -> AsyncIterator[Starlette]:
    """Open the store and the SBI clients and yield the AUSF application; close them on exit."""
    async with AsyncExitStack() as resources:
        store = await open_auth_context_store(config.store, config.database)
        resources.push_async_callback(store.close)
        udm = UdmConsumer(await resources.enter_async_context(client_for(config.udm)))

        aanf = None
        if config.aanf is not None:
            aanf = AanfConsumer(await resources.enter_async_context(client_for(config.aanf)))

        processor = AusfProcessor(
            store,
            udm,
            aanf,
            home_network=config.home_network,
            nf_instance_id=config.nf_instance_id,
            context_lifetime=config.auth_context_lifetime,
        )
        yield create_app(ausf_routes(processor))


def client_for(peer: Peer) -> SbiClient:
    return SbiClient(peer.uri, timeout=peer.timeout)


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the AUSF described by `config_path` until `shutdown` is set."""
    config = load_ausf_config(config_path)
    async with ausf_app(config) as app:
        await serve_nf("AUSF", app, config.sbi, ready, shutdown)

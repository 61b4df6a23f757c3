"""Assemble the UDM: store, processor and routes, and run it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.nf.udm.api import udm_routes
from msgin5g.nf.udm.config import UdmConfig, load_udm_config
from msgin5g.nf.udm.processor import UdmProcessor
from msgin5g.nf.udm.redis_store import open_subscriber_store
from msgin5g.sbi.app import create_app


@asynccontextmanager
async def udm_app(config: UdmConfig) -> AsyncIterator[Starlette]:
    """Open the subscriber store and yield the UDM application; close the store on exit."""
    store = await open_subscriber_store(config.store, config.database)
    try:
        yield create_app(udm_routes(UdmProcessor(store)))
    finally:
        await store.close()


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the UDM described by `config_path` until `shutdown` is set."""
    config = load_udm_config(config_path)
    async with udm_app(config) as app:
        await serve_nf("UDM", app, config.sbi, ready, shutdown)

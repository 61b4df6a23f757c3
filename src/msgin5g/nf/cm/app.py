"""Assemble the CM server: store, processor and routes, and run it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.cm.api import cm_routes
from msgin5g.nf.cm.config import CmConfig, load_cm_config
from msgin5g.nf.cm.processor import CmProcessor
from msgin5g.nf.cm.redis_store import open_association_store
from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.sbi.app import create_app


@asynccontextmanager
async def cm_app(config: CmConfig) -> AsyncIterator[Starlette]:
    """Open the association store and yield the CM application; close the store on exit."""
    store = await open_association_store(config.store, config.database)
    try:
        yield create_app(cm_routes(CmProcessor(store)))
    finally:
        await store.close()


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the CM server described by `config_path` until `shutdown` is set."""
    config = load_cm_config(config_path)
    async with cm_app(config) as app:
        await serve_nf("CM server", app, config.sbi, ready, shutdown)

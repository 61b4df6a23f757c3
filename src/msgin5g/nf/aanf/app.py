"""Assemble the AAnF: store, processor and routes, and run it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.aanf.api import aanf_routes
from msgin5g.nf.aanf.config import AanfConfig, load_aanf_config
from msgin5g.nf.aanf.processor import AanfProcessor
from msgin5g.nf.aanf.redis_store import open_context_store
from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.sbi.app import create_app
from msgin5g.sbi.oauth import TokenVerifier


@asynccontextmanager
async def aanf_app(config: AanfConfig) -> AsyncIterator[Starlette]:
    """Open the AKMA context store and yield the AAnF application; close the store on exit."""
    store = await open_context_store(config.store, config.database)
    try:
        processor = AanfProcessor(
            store,
            k_af_lifetime=config.k_af_lifetime,
            context_lifetime=config.context_lifetime,
            authorized_afs=config.authorized_afs,
        )
        verifier = None
        if config.oauth is not None:
            verifier = TokenVerifier(config.oauth.key(), config.oauth.audience)
        yield create_app(aanf_routes(processor, verifier))
    finally:
        await store.close()


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the AAnF described by `config_path` until `shutdown` is set."""
    config = load_aanf_config(config_path)
    async with aanf_app(config) as app:
        await serve_nf("AAnF", app, config.sbi, ready, shutdown)

"""Assemble the NEF: token endpoint, 3gpp-akma API and its AAnF and UDM consumers, and run it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.nef.api import nef_routes
from msgin5g.nf.nef.config import NefConfig, load_nef_config
from msgin5g.nf.nef.consumer import AanfConsumer, UdmConsumer
from msgin5g.nf.nef.processor import NefProcessor
from msgin5g.nf.nef.token import token_routes
from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.sbi.app import create_app
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.oauth import TokenIssuer, TokenVerifier

# The `aud` claim of the tokens this NEF issues to AFs and accepts from them.
NEF_AUDIENCE = "nef"


@contextlib.asynccontextmanager
async def nef_app(config: NefConfig) -> AsyncIterator[Starlette]:
    """Open the consumers and yield the NEF application; close them on exit."""
    issuer = TokenIssuer(config.oauth.key(), issuer=NEF_AUDIENCE, lifetime=config.oauth.token_lifetime)
    verifier = TokenVerifier(config.oauth.key(), NEF_AUDIENCE)

    aanf_issuer = None
    if config.aanf.signing_key is not None:
        aanf_key = bytes.fromhex(config.aanf.signing_key.get_secret_value())
        aanf_issuer = TokenIssuer(aanf_key, issuer=NEF_AUDIENCE, lifetime=config.oauth.token_lifetime)

    async with contextlib.AsyncExitStack() as stack:
        aanf = AanfConsumer(
            config.aanf.uri, timeout=config.aanf.timeout, issuer=aanf_issuer, audience=config.aanf.audience
        )
        stack.push_async_callback(aanf.aclose)
        udm_sbi = await stack.enter_async_context(SbiClient(config.udm.uri, timeout=config.udm.timeout))
        processor = NefProcessor(config.afs, aanf, UdmConsumer(udm_sbi))
        routes = token_routes(config.afs, issuer, NEF_AUDIENCE) + nef_routes(processor, verifier)
        yield create_app(routes)


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the NEF described by `config_path` until `shutdown` is set."""
    config = load_nef_config(config_path)
    async with nef_app(config) as app:
        await serve_nf("NEF", app, config.sbi, ready, shutdown)

"""Assemble the MSGin5G Configuration Function: processor and routes, and run it."""

import asyncio
from pathlib import Path

from starlette.applications import Starlette

from msgin5g.nf.cf.api import cf_routes
from msgin5g.nf.cf.config import CfConfig, load_cf_config
from msgin5g.nf.cf.processor import CfProcessor
from msgin5g.nf.runner import ReadyCallback, serve_nf
from msgin5g.sbi.app import create_app


def cf_app(config: CfConfig) -> Starlette:
    """Build the Configuration Function application from the associations of `config`."""
    associations = [entry.to_association() for entry in config.associations]
    return create_app(cf_routes(CfProcessor(associations)))


async def run(config_path: Path, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Serve the Configuration Function described by `config_path` until `shutdown` is set."""
    config = load_cf_config(config_path)
    await serve_nf("MSGin5G Configuration Function", cf_app(config), config.sbi, ready, shutdown)

"""A running Gateway UE: its SQLite file, upstream session, local listener and inbox poller.

    async with running_gateway(config, upstream) as gateway:
        print(gateway.uri, gateway.upstream.state)

`running_gateway` starts the upstream session first (primary authentication,
AKMA and REG of the gateway's own UE service ID). When that fails the gateway
still listens, responds to devices with UPSTREAM_UNAVAILABLE, and the poller
retries the session with exponential backoff (1 s doubling to 60 s, and never
sooner than the poll interval).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from msgin5g.gateway.backoff import UpstreamStatus
from msgin5g.gateway.config import GatewayConfig
from msgin5g.gateway.local_coap import LocalCoapListener, start_local_coap_listener
from msgin5g.gateway.local_dtls import LocalDtlsListener, LocalDtlsOptions, start_local_dtls_listener
from msgin5g.gateway.poller import InboxPoller
from msgin5g.gateway.service import GatewayService
from msgin5g.gateway.store import GatewayStore
from msgin5g.gateway.upstream import Upstream

logger = logging.getLogger(__name__)


class RunningGateway:
    """The parts of a started gateway, for the CLI and tests."""

    def __init__(
        self,
        config: GatewayConfig,
        upstream: Upstream,
        store: GatewayStore,
        service: GatewayService,
        poller: InboxPoller,
        listener: LocalDtlsListener | LocalCoapListener,
    ) -> None:
        self.config = config
        self.upstream = upstream
        self.store = store
        self.service = service
        self.poller = poller
        self.listener = listener

    @property
    def uri(self) -> str:
        return self.listener.uri

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def running_gateway(
    config: GatewayConfig, upstream: Upstream, *, dtls_options: LocalDtlsOptions | None = None
) -> AsyncIterator[RunningGateway]:
    """Start every part of the gateway, yield it, and stop it cleanly on exit."""
    store = await GatewayStore(config.database).open()
    status = UpstreamStatus()
    service = GatewayService(config, upstream, store, status=status)
    poller = InboxPoller(config, upstream, store, service, status=status)
    shutdown = asyncio.Event()
    listener: LocalDtlsListener | LocalCoapListener | None = None
    poll_task: asyncio.Task[None] | None = None
    try:
        await poller.start_upstream()
        listener = await _start_listener(config, service, dtls_options)
        poll_task = asyncio.create_task(poller.run(shutdown), name="gateway inbox poller")
        yield RunningGateway(config, upstream, store, service, poller, listener)
    finally:
        shutdown.set()
        if listener is not None:
            await listener.close()
        await service.close()
        if poll_task is not None:
            await asyncio.gather(poll_task, return_exceptions=True)
        await upstream.close()
        await store.close()
        logger.info("gateway stopped")


async def _start_listener(
    config: GatewayConfig, service: GatewayService, dtls_options: LocalDtlsOptions | None
) -> LocalDtlsListener | LocalCoapListener:
    listener = config.listener
    try:
        if listener.secured:
            return await start_local_dtls_listener(
                listener.host, listener.port, service=service, psks=config.psk_table(), options=dtls_options
            )
        return await start_local_coap_listener(listener.host, listener.port, service=service)
    except OSError as error:
        raise OSError(
            error.errno,
            f"cannot listen on {listener.host}:{listener.port}: {error.strerror}; "
            "choose another listener.port, or 0 for a free one",
        ) from error

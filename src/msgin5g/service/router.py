"""The MSGin5G-1 dispatcher shared by every Ua* listener.

Each listener (CoAP over TLS or DTLS, HTTPS, and the plain CoAP test
listeners) hands every request to `Msgin5gRouter.handle` with the UE ID that
the AAnF or NEF returned with K_AF. The router applies the CoAP checks that
every resource shares (critical options, path, method, Content-Format,
Accept), validates the body against the operation's JSON Schema, and calls
the handler registered for that operation with the parsed request.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from msgin5g.service import messages
from msgin5g.service.messages import Cause, Operation

logger = logging.getLogger(__name__)

# Request options the server processes (RFC 7252 clause 5.4.1: any other critical
# option in a request gets 4.02 Bad Option).
UNDERSTOOD_OPTIONS = frozenset(
    {
        OptionNumber.URI_HOST,
        OptionNumber.URI_PORT,
        OptionNumber.URI_PATH,
        OptionNumber.CONTENT_FORMAT,
        OptionNumber.ACCEPT,
    }
)

# handler(request, ue_id, connection_id) -> response. `request` is the parsed
# request dataclass of the operation (messages.MessageRequest for MSG, ...);
# `connection_id` only labels log lines.
Handler = Callable[[Any, str, str], Awaitable[Message]]


class CoapHandler(Protocol):
    """The interface a listener calls for each CoAP request of an authenticated UE."""

    async def handle(self, request: Message, ue_id: str, connection_id: str) -> Message: ...


def diagnostic_response(code: Code, text: str) -> Message:
    """Build an error response with a diagnostic payload (RFC 7252 clause 5.5.2: UTF-8, no Content-Format)."""
    return Message(code=code, payload=text.encode("utf-8"))


class Msgin5gRouter:
    """Route the CoAP requests of an authenticated UE to the handler of each operation."""

    def __init__(self, routes: Mapping[Operation, Handler] | None = None) -> None:
        self._handlers: dict[Operation, Handler] = {}
        self.add_routes(routes or {})

    def add_route(self, operation: Operation, handler: Handler) -> None:
        """Serve `operation` at its path with `handler`; raise ValueError if it is served already."""
        if operation in self._handlers:
            raise ValueError(f"operation {operation} already has a handler; register it once")
        self._handlers[operation] = handler

    def add_routes(self, routes: Mapping[Operation, Handler]) -> None:
        for operation, handler in routes.items():
            self.add_route(operation, handler)

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(self._handlers)

    async def handle(self, request: Message, ue_id: str, connection_id: str) -> Message:
        """Return the response to one CoAP request from the UE authenticated as `ue_id`."""
        rejection = self._check_coap_request(request)
        if rejection is not None:
            return rejection

        operation = messages.OPERATION_BY_PATH[tuple(request.opt.uri_path)]
        try:
            body = messages.parse_request(operation, bytes(request.payload))
        except messages.MalformedMessage as error:
            logger.info("connection %s: %s rejected: %s", connection_id, operation, error.detail)
            return messages.failure_response(
                operation, Cause.MALFORMED_MESSAGE, error.detail, invalid_params=error.invalid_params
            )
        return await self._handlers[operation](body, ue_id, connection_id)

    def _check_coap_request(self, request: Message) -> Message | None:
        """Return a CoAP-level error response, or None when the request is routable."""
        for option in request.opt.option_list():
            number = OptionNumber(option.number)
            if number.is_critical() and number not in UNDERSTOOD_OPTIONS:
                return diagnostic_response(
                    Code.BAD_OPTION, f"critical option {int(number)} is not supported"
                )

        path = tuple(request.opt.uri_path)
        operation = messages.OPERATION_BY_PATH.get(path)
        if operation is None or operation not in self._handlers:
            paths = ", ".join("/" + "/".join(item.path) for item in self._handlers)
            return diagnostic_response(
                Code.NOT_FOUND, f"no resource at /{'/'.join(path)}; MSGin5G-1 resources: {paths}"
            )
        if request.code != Code.POST:
            return diagnostic_response(
                Code.METHOD_NOT_ALLOWED, f"use POST on /{'/'.join(path)}, not {request.code}"
            )
        if request.opt.content_format != messages.CONTENT_FORMAT_JSON:
            return diagnostic_response(
                Code.UNSUPPORTED_CONTENT_FORMAT,
                "set Content-Format 50 (application/json) and send a JSON body",
            )
        accept = request.opt.accept
        if accept is not None and accept != messages.CONTENT_FORMAT_JSON:
            return diagnostic_response(
                Code.NOT_ACCEPTABLE, "responses are application/json (Content-Format 50)"
            )
        return None

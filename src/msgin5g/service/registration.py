"""REG and DEREG of an authenticated UE, independent of the Ua* security profile.

Every listener (CoAP over TLS or DTLS, and HTTPS) hands each request to
`RegistrationService.handle` with the UE ID that the AAnF or NEF returned
with K_AF. The service authorizes the UE service ID at the SEAL CM server
and stores the registration.
"""

import logging

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from msgin5g.service import messages
from msgin5g.service.authorization import CmUnavailable, RegistrationAuthorizer
from msgin5g.service.messages import Cause, MessageType
from msgin5g.service.store import RegistrationStore

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

ROUTES = {tuple(path): message_type for message_type, path in messages.REQUEST_PATHS.items()}


def diagnostic_response(code: Code, text: str) -> Message:
    # RFC 7252 clause 5.5.2: a diagnostic payload is UTF-8 text without Content-Format.
    return Message(code=code, payload=text.encode("utf-8"))


class RegistrationService:
    """Decide the REG and DEREG requests of an authenticated UE, independent of the transport."""

    def __init__(self, authorizer: RegistrationAuthorizer, store: RegistrationStore) -> None:
        self._authorizer = authorizer
        self._store = store

    async def handle(self, request: Message, ue_id: str, connection_id: str) -> Message:
        """Return the response to one CoAP request from the UE authenticated as `ue_id`.

        `connection_id` only labels the log lines.
        """
        rejection = self._check_coap_request(request)
        if rejection is not None:
            return rejection

        message_type = ROUTES[tuple(request.opt.uri_path)]
        try:
            body = messages.parse_request(message_type, bytes(request.payload))
        except messages.MalformedMessage as error:
            return messages.failure_response(
                message_type,
                Cause.MALFORMED_MESSAGE,
                error.detail,
                invalid_params=error.invalid_params,
            )

        if isinstance(body, messages.RegistrationRequest):
            return await self._register(body, ue_id, connection_id)
        return await self._deregister(body, ue_id, connection_id)

    def _check_coap_request(self, request: Message) -> Message | None:
        """Return a CoAP-level error response, or None when the request is routable."""
        for option in request.opt.option_list():
            number = OptionNumber(option.number)
            if number.is_critical() and number not in UNDERSTOOD_OPTIONS:
                return diagnostic_response(
                    Code.BAD_OPTION, f"critical option {int(number)} is not supported"
                )

        path = tuple(request.opt.uri_path)
        if path not in ROUTES:
            paths = ", ".join("/" + "/".join(p) for p in ROUTES)
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

    async def _register(
        self, request: messages.RegistrationRequest, ue_id: str, connection_id: str
    ) -> Message:
        ue_service_id = request.ue_service_id
        try:
            associated = await self._authorizer.is_associated(ue_id, ue_service_id)
        except CmUnavailable as error:
            logger.warning(
                "connection %s: REG of %s failed: %s", connection_id, ue_service_id, error
            )
            return messages.failure_response(
                MessageType.REG,
                Cause.AUTHORIZATION_UNAVAILABLE,
                "the server could not reach the SEAL CM server to check the UE service ID "
                "association; retry later",
                ue_service_id=ue_service_id,
            )

        if not associated:
            logger.info(
                "connection %s: REG of %s rejected: not associated with the UE's UE ID",
                connection_id,
                ue_service_id,
            )
            return messages.failure_response(
                MessageType.REG,
                Cause.UE_SERVICE_ID_NOT_ASSOCIATED,
                f"UE service ID {ue_service_id!r} is not associated with the UE ID that AKMA "
                "authenticated; register a UE service ID provisioned for this UE, or ask the "
                "operator to associate this one at the CM server",
                ue_service_id=ue_service_id,
            )

        created = await self._store.register(ue_service_id, ue_id, request.client_profile)
        logger.info(
            "connection %s: REG of %s accepted (%s)",
            connection_id,
            ue_service_id,
            "new" if created else "renewed",
        )
        return messages.build_response(
            MessageType.REG,
            Code.CREATED if created else Code.CHANGED,
            f"UE service ID {ue_service_id!r} is registered",
            ue_service_id=ue_service_id,
        )

    async def _deregister(
        self, request: messages.DeregistrationRequest, ue_id: str, connection_id: str
    ) -> Message:
        ue_service_id = request.ue_service_id
        removed = await self._store.deregister(ue_service_id, ue_id)
        if not removed:
            logger.info(
                "connection %s: DEREG of %s rejected: no registration by this UE",
                connection_id,
                ue_service_id,
            )
            return messages.failure_response(
                MessageType.DEREG,
                Cause.NOT_REGISTERED,
                f"this UE has no registration of UE service ID {ue_service_id!r}; check the UE "
                "service ID, or send REG first",
                ue_service_id=ue_service_id,
            )

        logger.info("connection %s: DEREG of %s accepted", connection_id, ue_service_id)
        return messages.build_response(
            MessageType.DEREG,
            Code.DELETED,
            f"UE service ID {ue_service_id!r} is de-registered",
            ue_service_id=ue_service_id,
        )

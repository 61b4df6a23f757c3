"""REG, BULK_REG and DEREG of an authenticated UE, independent of the Ua* security profile.

`Msgin5gRouter` (service/router.py) checks each CoAP request and calls
`RegistrationService.register`, `bulk_register` or `deregister` with the parsed
body and the UE ID that the AAnF or NEF returned with K_AF. The service
authorizes each UE service ID at the source of associations (the SEAL CM
server or the MSGin5G Configuration Function) and stores the registration.

A REG without `constrainedUe` accepts a UE service ID associated with the UE
ID in either relation (`own` or `gateway`). A REG with `constrainedUe: true`,
and every BULK_REG entry, registers a constrained UE behind the sending
Gateway UE, so it needs the `gateway` relation (TS 33.501 Annex Y.2).
"""

import logging
from datetime import UTC, datetime

from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.service import messages
from msgin5g.nf.cm.store import RELATION_GATEWAY, RELATION_OWN
from msgin5g.service.authorization import AuthorizationUnavailable, RegistrationAuthorizer
from msgin5g.service.messages import BulkEntryResult, Cause, MessageType, Operation, Urgency
from msgin5g.service.router import Handler, Msgin5gRouter, diagnostic_response
from msgin5g.service.store import RegistrationStore

logger = logging.getLogger(__name__)

__all__ = ["RegistrationService", "diagnostic_response"]


class RegistrationService:
    """Decide the REG, BULK_REG and DEREG requests of an authenticated UE, independent of the transport."""

    def __init__(self, authorizer: RegistrationAuthorizer, store: RegistrationStore) -> None:
        self._authorizer = authorizer
        self._store = store
        self._router: Msgin5gRouter | None = None

    def routes(self) -> dict[Operation, Handler]:
        """Return the handlers of the registration operations, for `Msgin5gRouter.add_routes`."""
        return {
            Operation.REG: self.register,
            Operation.BULK_REG: self.bulk_register,
            Operation.DEREG: self.deregister,
        }

    async def handle(self, request: Message, ue_id: str, connection_id: str) -> Message:
        """Handle one CoAP request through a router that serves only these operations.

        Listeners in production get a `Msgin5gRouter` with every operation; this
        serves callers (tests, tools) that need registration only.
        """
        if self._router is None:
            self._router = Msgin5gRouter(self.routes())
        return await self._router.handle(request, ue_id, connection_id)

    async def register(
        self, request: messages.RegistrationRequest, ue_id: str, connection_id: str
    ) -> Message:
        """Authorize the UE service ID for `ue_id` and store the registration."""
        ue_service_id = request.ue_service_id
        try:
            relation = await self._authorizer.relation(ue_id, ue_service_id)
        except AuthorizationUnavailable as error:
            logger.warning(
                "connection %s: REG of %s failed: %s", connection_id, ue_service_id, error
            )
            return messages.failure_response(
                MessageType.REG,
                Cause.AUTHORIZATION_UNAVAILABLE,
                self._unavailable_detail(),
                ue_service_id=ue_service_id,
            )

        rejection = self._association_problem(ue_service_id, relation, request.constrained_ue)
        if rejection is not None:
            logger.info(
                "connection %s: REG of %s rejected: relation %s, constrainedUe %s",
                connection_id,
                ue_service_id,
                relation or "none",
                request.constrained_ue,
            )
            return messages.failure_response(
                MessageType.REG,
                Cause.UE_SERVICE_ID_NOT_ASSOCIATED,
                rejection,
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

    async def bulk_register(
        self, request: messages.BulkRegistrationRequest, ue_id: str, connection_id: str
    ) -> Message:
        """Register the constrained UEs of a Gateway UE, URGENT entries first.

        The source of associations is asked once for the whole bulk. Each entry
        gets its own result, in request order: an expired entry fails with
        REQUEST_EXPIRED, an entry without the gateway relation with
        UE_SERVICE_ID_NOT_ASSOCIATED, and every other entry with
        AUTHORIZATION_UNAVAILABLE when the source cannot be asked. The
        response is 2.04 whatever the entries' results.
        """
        entries = request.registrations
        results: dict[int, BulkEntryResult] = {}
        pending = []
        for index, entry in enumerate(entries):
            if is_expired(entry):
                results[index] = expired_result(entry)
            else:
                pending.append(index)

        relations = await self._bulk_relations(ue_id, connection_id, bool(pending))
        # sorted() is stable, so entries of the same urgency keep their request order.
        for index in sorted(pending, key=lambda i: entries[i].urgency is not Urgency.URGENT):
            results[index] = await self._register_entry(entries[index], ue_id, relations)

        ordered = [results[index] for index in range(len(entries))]
        accepted = sum(result.accepted for result in ordered)
        logger.info(
            "connection %s: BULK_REG of %d constrained UEs: %d registered, %d rejected",
            connection_id,
            len(ordered),
            accepted,
            len(ordered) - accepted,
        )
        for result in ordered:
            if not result.accepted:
                logger.info(
                    "connection %s: BULK_REG entry %s rejected: %s",
                    connection_id,
                    result.ue_service_id,
                    result.cause,
                )
        return messages.bulk_registration_response(
            ordered, f"{accepted} of {len(ordered)} constrained UEs registered"
        )

    async def _bulk_relations(
        self, ue_id: str, connection_id: str, needed: bool
    ) -> dict[str, str] | None:
        """Return the relations of `ue_id`, or None when the source cannot be asked."""
        if not needed:
            return {}
        try:
            return await self._authorizer.relations(ue_id)
        except AuthorizationUnavailable as error:
            logger.warning("connection %s: BULK_REG cannot be authorized: %s", connection_id, error)
            return None

    async def _register_entry(
        self,
        entry: messages.BulkRegistrationEntry,
        ue_id: str,
        relations: dict[str, str] | None,
    ) -> BulkEntryResult:
        """Authorize and store one bulk entry as a constrained UE behind `ue_id`."""
        ue_service_id = entry.ue_service_id
        if relations is None:
            return BulkEntryResult(
                ue_service_id, self._unavailable_detail(), Cause.AUTHORIZATION_UNAVAILABLE
            )

        rejection = self._association_problem(
            ue_service_id, relations.get(ue_service_id), constrained_ue=True
        )
        if rejection is not None:
            return BulkEntryResult(ue_service_id, rejection, Cause.UE_SERVICE_ID_NOT_ASSOCIATED)
        # The entry may have expired while the entries before it were stored.
        if is_expired(entry):
            return expired_result(entry)

        created = await self._store.register(ue_service_id, ue_id, entry.client_profile)
        state = "registered" if created else "registered again (renewed)"
        return BulkEntryResult(ue_service_id, f"UE service ID {ue_service_id!r} is {state}")

    def _association_problem(
        self, ue_service_id: str, relation: str | None, constrained_ue: bool
    ) -> str | None:
        """Return why the relation does not allow this registration, or None when it does."""
        source = self._authorizer.source_name
        if relation is None and not constrained_ue:
            return (
                f"UE service ID {ue_service_id!r} is not associated with the UE ID that AKMA "
                "authenticated; register a UE service ID provisioned for this UE, or ask the "
                f"operator to associate this one at the {source}"
            )
        if relation is None:
            return (
                f"UE service ID {ue_service_id!r} has no {RELATION_GATEWAY!r} association with "
                "the UE ID of this Gateway UE, so the gateway may not represent it; ask the "
                f"operator to associate it with this UE ID as {RELATION_GATEWAY!r} at the {source}"
            )
        if relation != RELATION_GATEWAY and constrained_ue:
            return (
                f"UE service ID {ue_service_id!r} is associated with this UE ID as "
                f"{RELATION_OWN!r}, but the {RELATION_GATEWAY!r} association that a constrained "
                "UE behind this Gateway UE needs is missing; register it without constrainedUe, "
                f"or ask the operator to change its relation to {RELATION_GATEWAY!r} at the {source}"
            )
        return None

    def _unavailable_detail(self) -> str:
        return (
            f"the server could not reach the {self._authorizer.source_name} to check the UE "
            "service ID association; retry later"
        )

    async def deregister(
        self, request: messages.DeregistrationRequest, ue_id: str, connection_id: str
    ) -> Message:
        """Remove the registration of the UE service ID if `ue_id` made it."""
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


def is_expired(entry: messages.BulkRegistrationEntry) -> bool:
    """Return True if the entry's expirationTime has passed."""
    return entry.expiration_time is not None and entry.expiration_time <= datetime.now(UTC)


def expired_result(entry: messages.BulkRegistrationEntry) -> BulkEntryResult:
    expired_at = messages.format_time(entry.expiration_time)
    return BulkEntryResult(
        entry.ue_service_id,
        f"the registration of UE service ID {entry.ue_service_id!r} expired at {expired_at} "
        "before the server processed it; send it again with a later expirationTime",
        Cause.REQUEST_EXPIRED,
    )

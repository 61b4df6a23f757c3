"""SS_UserProfileRetrieval handler: parse the query, then call the processor.

The val-tgt-ue query parameter carries a ValTargetUe object as JSON text, as
3GPP APIs do for structured query parameters, e.g.
?val-tgt-ue={"valUeId":"imsi-001010000000001"} (percent-encoded).

NOTE: the TS 29.549 file declares val-tgt-ue with a plain schema, which in
OpenAPI 3.0 means the exploded form (?valUeId=...). This server accepts only
the JSON form.
"""

import json

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.cm.processor import CmProcessor
from msgin5g.sbi.app import describe_validation_error, json_response, sbi_route
from msgin5g.sbi.models.ss_upr import (
    VAL_SERVICE_ID_QUERY,
    VAL_SERVICES_PATH,
    VAL_TARGET_UE_QUERY,
    ValTargetUe,
)
from msgin5g.sbi.problem import Cause, Rejection, SbiError

TARGET_PARAM = f"query {VAL_TARGET_UE_QUERY}"


def cm_routes(processor: CmProcessor) -> list[Route]:
    async def retrieve_val_user_profile(request: Request) -> Response:
        target = parse_val_target_ue(request.query_params.get(VAL_TARGET_UE_QUERY))
        val_service_id = request.query_params.get(VAL_SERVICE_ID_QUERY)
        profiles = await processor.retrieve_val_user_profiles(target, val_service_id)
        return json_response(profiles)

    return [
        sbi_route(
            VAL_SERVICES_PATH,
            retrieve_val_user_profile,
            ["GET"],
            operation="RetrieveValUserProfile",
        )
    ]


def parse_val_target_ue(text: str | None) -> ValTargetUe:
    """Parse the mandatory val-tgt-ue query parameter; raise SbiError (400) when it is wrong."""
    if text is None:
        raise SbiError.bad_request(
            Cause.MANDATORY_QUERY_PARAM_MISSING,
            [Rejection(TARGET_PARAM, 'is mandatory, e.g. {"valUeId":"imsi-001010000000001"}')],
        )

    try:
        return ValTargetUe.model_validate(json.loads(text))
    except json.JSONDecodeError:
        reason = 'must be a JSON object such as {"valUeId":"imsi-001010000000001"}'
    except ValidationError as error:
        _, rejections = describe_validation_error(error, ValTargetUe)
        reason = "; ".join(f"{item.param}: {item.reason}" for item in rejections)
    raise SbiError.bad_request(
        Cause.MANDATORY_QUERY_PARAM_INCORRECT, [Rejection(TARGET_PARAM, reason)]
    )

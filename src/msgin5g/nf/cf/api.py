"""ue-associations handler of the MSGin5G Configuration Function: parse the query, then return the associations."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.cf.models import UE_ASSOCIATIONS_PATH, UE_ID_QUERY
from msgin5g.nf.cf.processor import CfProcessor
from msgin5g.sbi.app import json_response, sbi_route
from msgin5g.sbi.models.common import GPSI_PATTERN, SUPI_PATTERN
from msgin5g.sbi.problem import Cause, Rejection, SbiError

UE_ID_PARAM = f"query {UE_ID_QUERY}"
UE_ID_EXAMPLE = "a SUPI such as imsi-001010000000001 or a GPSI such as msisdn-491700000001"


def cf_routes(processor: CfProcessor) -> list[Route]:
    async def get_ue_associations(request: Request) -> Response:
        ue_id = parse_ue_id(request.query_params.get(UE_ID_QUERY))
        return json_response(processor.ue_associations(ue_id))

    return [
        sbi_route(UE_ASSOCIATIONS_PATH, get_ue_associations, ["GET"], operation="GetUeAssociations")
    ]


def parse_ue_id(text: str | None) -> str:
    """Return the mandatory ue-id query parameter; raise SbiError (400) when it is missing or wrong.

    The rejection does not echo the value, because it may be a SUPI and the
    rejection is logged at info level.
    """
    if text is None:
        raise SbiError.bad_request(
            Cause.MANDATORY_QUERY_PARAM_MISSING,
            [Rejection(UE_ID_PARAM, f"is mandatory: give {UE_ID_EXAMPLE}")],
        )
    if not (SUPI_PATTERN.fullmatch(text) or GPSI_PATTERN.fullmatch(text)):
        raise SbiError.bad_request(
            Cause.MANDATORY_QUERY_PARAM_INCORRECT,
            [Rejection(UE_ID_PARAM, f"is not a SUPI or GPSI: give {UE_ID_EXAMPLE}")],
        )
    return text

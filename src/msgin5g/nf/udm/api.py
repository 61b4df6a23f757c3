"""Nudm_UEAuthentication handlers: parse and validate, then call the processor."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.udm.processor import UdmProcessor
from msgin5g.sbi.app import json_response, path_parameter_error, read_json_body, sbi_route
from msgin5g.sbi.models.common import SUCI_PREFIX, check_supi
from msgin5g.sbi.models.nudm_ueau import API_ROOT, AuthenticationInfoRequest


def udm_routes(processor: UdmProcessor) -> list[Route]:
    async def generate_auth_data(request: Request) -> Response:
        supi_or_suci = parse_supi_or_suci(request.path_params["supiOrSuci"])
        body = await read_json_body(request, AuthenticationInfoRequest)
        result = await processor.generate_auth_data(supi_or_suci, body)
        return json_response(result)

    return [
        sbi_route(
            API_ROOT + "/{supiOrSuci}/security-information/generate-auth-data",
            generate_auth_data,
            ["POST"],
            operation="GenerateAuthData",
        )
    ]


def parse_supi_or_suci(value: str) -> str:
    """Accept a SUPI, or a SUCI that the processor then declines with 501."""
    if value.startswith(SUCI_PREFIX):
        return value
    try:
        return check_supi(value)
    except ValueError as error:
        raise path_parameter_error("supiOrSuci", str(error)) from None

"""Nudm_UEAuthentication and Nudm_SDM id translation handlers: parse, then call the processor."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.udm.processor import UdmProcessor
from msgin5g.nf.udm.sdm import ID_TRANSLATION_PATH
from msgin5g.sbi.app import json_response, path_parameter_error, read_json_body, sbi_route
from msgin5g.sbi.models.common import check_supi, check_supi_or_suci
from msgin5g.sbi.models.nudm_ueau import API_ROOT, AuthenticationInfoRequest


def udm_routes(processor: UdmProcessor) -> list[Route]:
    async def generate_auth_data(request: Request) -> Response:
        supi_or_suci = parse_supi_or_suci(request.path_params["supiOrSuci"])
        body = await read_json_body(request, AuthenticationInfoRequest)
        result = await processor.generate_auth_data(supi_or_suci, body)
        return json_response(result)

    async def get_supi_or_gpsi(request: Request) -> Response:
        supi = parse_translated_ue_id(request.path_params["ueId"])
        return json_response(await processor.get_supi_or_gpsi(supi))

    return [
        sbi_route(
            ID_TRANSLATION_PATH, get_supi_or_gpsi, ["GET"], operation="GetSupiOrGpsi"
        ),
        sbi_route(
            API_ROOT + "/{supiOrSuci}/security-information/generate-auth-data",
            generate_auth_data,
            ["POST"],
            operation="GenerateAuthData",
        )
    ]


def parse_supi_or_suci(value: str) -> str:
    """Accept a SUPI, or a SUCI that the processor then declines with 501."""
    try:
        return check_supi_or_suci(value)
    except ValueError as error:
        raise path_parameter_error("supiOrSuci", str(error)) from None


def parse_translated_ue_id(value: str) -> str:
    """Accept the SUPI of an id translation request; this UDM does not translate GPSIs."""
    try:
        return check_supi(value)
    except ValueError as error:
        raise path_parameter_error(
            "ueId", f"{error}; this UDM translates a SUPI to its GPSI only"
        ) from None

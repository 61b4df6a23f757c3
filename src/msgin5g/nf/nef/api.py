"""3gpp-akma handler (TS 29.522 clause 5.14): authenticate the AF, parse, call the processor."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.nef.config import AKMA_SCOPE
from msgin5g.nf.nef.processor import NefProcessor
from msgin5g.sbi.app import json_response, no_content, read_json_body, sbi_route
from msgin5g.sbi.models.naanf_akma import AkmaAfKeyRequest
from msgin5g.sbi.oauth import BearerError, TokenVerifier, authenticate_bearer, bearer_error_response

API_ROOT = "/3gpp-akma/v1"
RETRIEVE_PATH = f"{API_ROOT}/retrieve"
OPERATION = "RetrieveAKMAAppKey"


def nef_routes(processor: NefProcessor, verifier: TokenVerifier) -> list[Route]:
    async def retrieve_akma_app_key(request: Request) -> Response:
        try:
            claims = authenticate_bearer(
                request.headers.get("authorization"), verifier, AKMA_SCOPE, [AKMA_SCOPE]
            )
        except BearerError as error:
            return bearer_error_response(request, OPERATION, error)

        key_request = await read_json_body(request, AkmaAfKeyRequest)
        key_data = await processor.retrieve_akma_app_key(claims, key_request)
        return no_content() if key_data is None else json_response(key_data)

    return [sbi_route(RETRIEVE_PATH, retrieve_akma_app_key, ["POST"], operation=OPERATION)]

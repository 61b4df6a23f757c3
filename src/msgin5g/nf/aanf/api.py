"""Naanf_AKMA handlers: parse and validate, then call the processor."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.aanf.processor import AanfProcessor
from msgin5g.sbi.app import json_response, no_content, read_json_body, sbi_route
from msgin5g.sbi.oauth import BearerError, TokenVerifier, authenticate_bearer, bearer_error_response
from msgin5g.sbi.models.naanf_akma import (
    REGISTER_ANCHOR_KEY_PATH,
    REMOVE_CONTEXT_PATH,
    RETRIEVE_APPLICATION_KEY_PATH,
    AkmaAfKeyRequest,
    AkmaKeyInfo,
    CtxRemove,
)


# TS 29.535 OAuth2 scopes of Naanf_AKMA.
APPLICATION_KEY_SCOPES = ("naanf-akma", "naanf-akma:applicationkeyget")
SUPI_ACCESS_SCOPE = "naanf-akma:applicationkeyget:supi-access"
REALM = "naanf-akma"


def aanf_routes(processor: AanfProcessor, verifier: TokenVerifier | None = None) -> list[Route]:
    """Build the Naanf_AKMA routes; with `verifier`, K_AF retrieval needs a bearer token."""

    async def register_akma_key(request: Request) -> Response:
        key_info = await read_json_body(request, AkmaKeyInfo)
        return json_response(await processor.register_anchor_key(key_info))

    async def get_akma_app_key_material(request: Request) -> Response:
        supi_access = True
        if verifier is not None:
            try:
                claims = authenticate_bearer(
                    request.headers.get("authorization"), verifier, REALM, APPLICATION_KEY_SCOPES
                )
            except BearerError as error:
                return bearer_error_response(request, "GetAKMAAPPKeyMaterial", error)
            supi_access = claims.has_scope(SUPI_ACCESS_SCOPE)

        key_request = await read_json_body(request, AkmaAfKeyRequest)
        key_data = await processor.retrieve_application_key(key_request, supi_access=supi_access)
        return no_content() if key_data is None else json_response(key_data)

    async def remove_context(request: Request) -> Response:
        await processor.remove_context(await read_json_body(request, CtxRemove))
        return no_content()

    return [
        sbi_route(
            REGISTER_ANCHOR_KEY_PATH, register_akma_key, ["POST"], operation="RegisterAKMAKey"
        ),
        sbi_route(
            RETRIEVE_APPLICATION_KEY_PATH,
            get_akma_app_key_material,
            ["POST"],
            operation="GetAKMAAPPKeyMaterial",
        ),
        sbi_route(REMOVE_CONTEXT_PATH, remove_context, ["POST"], operation="RemoveContext"),
    ]

"""Nausf_UEAuthentication handlers: parse and validate, then call the processor."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.ausf.processor import AusfProcessor
from msgin5g.sbi.app import json_response, no_content, read_json_body, sbi_route
from msgin5g.sbi.models.nausf_auth import (
    HAL_JSON,
    UE_AUTHENTICATIONS_PATH,
    DEREGISTER_PATH,
    AuthenticationInfo,
    ConfirmationData,
    DeregistrationInfo,
)

CONFIRMATION_ROUTE = UE_AUTHENTICATIONS_PATH + "/{authCtxId}/5g-aka-confirmation"


def ausf_routes(processor: AusfProcessor) -> list[Route]:
    async def create_ue_authentication(request: Request) -> Response:
        info = await read_json_body(request, AuthenticationInfo)
        created = await processor.create_context(info, api_root(request))
        return json_response(
            created.body, 201, media_type=HAL_JSON, headers={"Location": created.location}
        )

    async def confirm_5g_aka(request: Request) -> Response:
        data = await read_json_body(request, ConfirmationData)
        result = await processor.confirm(request.path_params["authCtxId"], data)
        return json_response(result)

    async def delete_5g_aka_result(request: Request) -> Response:
        await processor.delete_context(request.path_params["authCtxId"])
        return no_content()

    async def deregister(request: Request) -> Response:
        info = await read_json_body(request, DeregistrationInfo)
        await processor.deregister(info.supi)
        return no_content()

    return [
        sbi_route(DEREGISTER_PATH, deregister, ["POST"], operation="Deregister"),
        sbi_route(
            UE_AUTHENTICATIONS_PATH,
            create_ue_authentication,
            ["POST"],
            operation="UeAuthenticationsPost",
        ),
        sbi_route(
            CONFIRMATION_ROUTE,
            confirm_5g_aka,
            ["PUT"],
            operation="UeAuthenticationsAuthCtxId5gAkaConfirmationPut",
        ),
        sbi_route(
            CONFIRMATION_ROUTE,
            delete_5g_aka_result,
            ["DELETE"],
            operation="Delete5gAkaAuthenticationResult",
        ),
    ]


def api_root(request: Request) -> str:
    """Return the {apiRoot} that the peer used to reach this AUSF (TS 29.501 clause 4.4)."""
    return f"{request.url.scheme}://{request.url.netloc}"

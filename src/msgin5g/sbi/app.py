"""The Starlette application factory shared by the SBI servers.

Every handler goes through `sbi_route`, which turns an `SbiError` (or any
unexpected exception) into a ProblemDetails response and logs the rejection.
This module is the only place that renders ProblemDetails. Handlers read
bodies with `read_json_body`, which validates them with a pydantic model and
raises a 400 SbiError with a cause and the list of invalid parameters.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Lifespan

from msgin5g.sbi.models.common import MemberError
from msgin5g.sbi.problem import PROBLEM_JSON, Cause, Rejection, SbiError

logger = logging.getLogger(__name__)

JSON = "application/json"
# No body defined by the APIs served here comes near this size.
MAX_BODY_OCTETS = 64 * 1024

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(routes: Sequence[Route], *, lifespan: Lifespan | None = None) -> Starlette:
    """Build an ASGI application serving `routes`, each made with `sbi_route`."""
    return Starlette(
        routes=list(routes),
        exception_handlers={HTTPException: handle_http_exception},
        lifespan=lifespan,
    )


def sbi_route(path: str, endpoint: Endpoint, methods: Sequence[str], *, operation: str) -> Route:
    """Wrap `endpoint` so that errors become ProblemDetails responses.

    `operation` is the OpenAPI operationId (or another short name) used in
    the log lines.
    """

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HTTPException:
            raise  # Starlette renders these through handle_http_exception.
        except SbiError as error:
            return reject(request, operation, error)
        except Exception:
            logger.exception("%s failed with an unexpected error", operation)
            error = SbiError(
                500, Cause.SYSTEM_FAILURE, "internal error; the server log has the cause"
            )
            return reject(request, operation, error)

    return Route(path, guarded, methods=list(methods), name=operation)


def reject(request: Request, operation: str, error: SbiError) -> Response:
    """Log a rejected request and return its ProblemDetails response."""
    peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown peer"
    logger.info(
        "rejected %s from %s: %d %s: %s (%s)",
        operation,
        peer,
        error.status,
        error.cause or "-",
        error.detail,
        error.instance,
    )
    return problem_response(error)


def problem_response(error: SbiError) -> Response:
    body = error.to_problem().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Response(json.dumps(body), status_code=error.status, media_type=PROBLEM_JSON)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render the errors raised by Starlette itself (no route, wrong method)."""
    exc = cast(HTTPException, exc)
    cause = Cause.RESOURCE_URI_STRUCTURE_NOT_FOUND if exc.status_code == 404 else None
    detail = {
        404: "no resource at this URI",
        405: f"method {request.method} is not allowed on this resource",
    }.get(exc.status_code, HTTPStatus(exc.status_code).phrase)
    return reject(request, "routing", SbiError(exc.status_code, cause, detail))


def json_response(
    body: BaseModel | Sequence[BaseModel],
    status: int = 200,
    *,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> Response:
    """Serialize one model, or a list of models, with the JSON member names."""
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in body]
    return Response(json.dumps(data), status_code=status, media_type=media_type, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


async def read_json_body[M: BaseModel](request: Request, model: type[M]) -> M:
    """Read and validate a JSON request body; raise SbiError (400/415) when it is not valid."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise SbiError(
            415,
            None,
            f"the body must be {JSON}, not {content_type or 'absent'}",
        )

    raw = await read_limited_body(request)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SbiError(
            400, Cause.INVALID_MSG_FORMAT, f"the body is not valid JSON ({error})"
        ) from None
    if not isinstance(data, dict):
        raise SbiError(400, Cause.INVALID_MSG_FORMAT, "the body must be a JSON object")

    return validate_body(data, model)


async def read_limited_body(request: Request) -> bytes:
    """Read the body, or raise SbiError 413 once it exceeds MAX_BODY_OCTETS."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_OCTETS:
        raise _body_too_large()

    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_OCTETS:
            raise _body_too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large() -> SbiError:
    # Built only on this path: every SbiError draws a uuid4 for its instance URN.
    return SbiError(413, None, f"the request body exceeds {MAX_BODY_OCTETS} octets")


def validate_body[M: BaseModel](data: Any, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        cause, rejections = describe_validation_error(error, model)
        raise SbiError.bad_request(cause, rejections) from None


def describe_validation_error(
    error: ValidationError, model: type[BaseModel]
) -> tuple[Cause, list[Rejection]]:
    """Map a pydantic error to a TS 29.500 cause and one Rejection per invalid member.

    The cause is MANDATORY_IE_MISSING when a mandatory member is absent,
    MANDATORY_IE_INCORRECT when a mandatory member (or the body itself) is
    wrong, and OPTIONAL_IE_INCORRECT when only optional members are wrong.
    """
    required = {
        field.alias or name for name, field in model.model_fields.items() if field.is_required()
    }
    rejections: list[Rejection] = []
    missing_mandatory = incorrect_mandatory = False

    for item in error.errors(include_url=False, include_input=False):
        member_error = (item.get("ctx") or {}).get("error")
        if isinstance(member_error, MemberError):
            pointer, reason = member_error.param, member_error.reason
        else:
            pointer, reason = json_pointer(item["loc"]), describe_error(item)

        top = str(item["loc"][0]) if item["loc"] else None
        is_mandatory = top is None or top in required or isinstance(member_error, MemberError)
        missing_mandatory |= item["type"] == "missing" and is_mandatory
        incorrect_mandatory |= is_mandatory
        rejections.append(Rejection(param=pointer or "/", reason=reason))

    if missing_mandatory:
        cause = Cause.MANDATORY_IE_MISSING
    elif incorrect_mandatory:
        cause = Cause.MANDATORY_IE_INCORRECT
    else:
        cause = Cause.OPTIONAL_IE_INCORRECT
    return cause, rejections


def json_pointer(location: Sequence[int | str]) -> str:
    """Encode a pydantic error location as a JSON Pointer (RFC 6901)."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in location]
    return "".join(f"/{part}" for part in parts)


def describe_error(item: Any) -> str:
    if item["type"] == "missing":
        return "is mandatory but missing"
    message: str = item["msg"]
    return message.removeprefix("Value error, ")


def path_parameter_error(name: str, reason: str) -> SbiError:
    """Build the 400 error for an invalid variable path segment, named "{name}"."""
    return SbiError.bad_request(
        Cause.MANDATORY_IE_INCORRECT, [Rejection(param=f"{{{name}}}", reason=reason)]
    )

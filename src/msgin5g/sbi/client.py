"""HTTP/2 client for calls between network functions.

The SBI runs HTTP/2 over cleartext TCP with prior knowledge (h2c, RFC 9113
clause 3.3): the client starts with the HTTP/2 connection preface, with no
HTTP/1.1 upgrade. Errors surface as one exception tree rooted at
`SbiClientError`. An error response from the peer becomes `SbiProblemError`
carrying the peer's ProblemDetails.
"""

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from msgin5g.sbi.problem import ProblemDetails

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0

_adapters: dict[Any, TypeAdapter] = {}


class SbiClientError(Exception):
    """Root of the errors raised by SbiClient."""


class SbiTransportError(SbiClientError):
    """Error for a peer that is unreachable, timed out or broke the HTTP/2 connection."""


class SbiInvalidResponseError(SbiClientError):
    """Error for a response whose status or body the API does not define."""


class SbiProblemError(SbiClientError):
    """Error for a response with an error status; `problem` contains the peer's ProblemDetails."""

    def __init__(self, status: int, problem: ProblemDetails) -> None:
        self.status = status
        self.problem = problem
        cause = problem.cause or "no cause"
        super().__init__(f"{status} {cause}: {problem.detail or problem.title or 'no detail'}")

    @property
    def cause(self) -> str | None:
        return self.problem.cause


@dataclass(frozen=True)
class SbiResponse[T]:
    """Successful response: status, headers and the validated body (None when empty)."""

    status: int
    headers: httpx.Headers
    body: T | None


def check_base_uri(base_uri: str) -> str:
    """Check an http:// URI with a host, e.g. http://127.0.0.1:8001; strip a trailing slash."""
    parts = urlsplit(base_uri)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"SBI URI {base_uri!r} must look like http://HOST:PORT "
            "(the SBI uses HTTP/2 over cleartext TCP)"
        )
    return base_uri.rstrip("/")


class SbiClient:
    """An HTTP/2 (h2c) client bound to one peer network function.

    Use it as an async context manager, or call `aclose()` when done.
    """

    def __init__(self, base_uri: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.base_uri = check_base_uri(base_uri)
        self._client = httpx.AsyncClient(
            base_url=self.base_uri, http1=False, http2=True, timeout=timeout
        )

    async def __aenter__(self) -> "SbiClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call[T](
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
        response_type: type[T] | Any = None,
        headers: dict[str, str] | None = None,
    ) -> SbiResponse[T]:
        """Send one request and return the validated body of a 2xx response.

        `path` is relative to the base URI, or an absolute URI that a peer
        returned (such as a HAL link). `response_type` validates the body of a
        2xx response (a model class or e.g. `list[ProfileDoc]`); leave it None
        when the response has no body. `headers` are added to the request, for
        example an Authorization header with a bearer token.
        """
        response = await self._send(method, path, body, params, headers)

        if response.status_code >= 300:
            raise SbiProblemError(response.status_code, parse_problem(response))
        if response.status_code == 204 or response_type is None:
            return SbiResponse(response.status_code, response.headers, None)
        body = self._parse(response, response_type)
        return SbiResponse(response.status_code, response.headers, body)

    async def _send(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        params: dict[str, str] | None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        json_body = None
        if body is not None:
            json_body = body.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            return await self._client.request(method, path, json=json_body, params=params, headers=headers)
        except httpx.TimeoutException:
            raise SbiTransportError(f"request to {self.base_uri} timed out") from None
        except httpx.HTTPError as error:
            raise SbiTransportError(
                f"{self.base_uri} is unreachable ({type(error).__name__}: {error})"
            ) from None

    def _parse(self, response: httpx.Response, response_type: Any) -> Any:
        adapter = _adapters.get(response_type)
        if adapter is None:
            adapter = _adapters[response_type] = TypeAdapter(response_type)
        try:
            return adapter.validate_json(response.content)
        except ValidationError as error:
            locations = ", ".join(
                "/" + "/".join(str(part) for part in item["loc"])
                for item in error.errors(include_input=False)
            )
            raise SbiInvalidResponseError(
                f"{self.base_uri} responded {response.status_code} with a body that does not "
                f"match the API ({error.error_count()} error(s) at {locations})"
            ) from None


def parse_problem(response: httpx.Response) -> ProblemDetails:
    """Read the ProblemDetails of an error response, or build a minimal one when it has none."""
    try:
        return ProblemDetails.model_validate_json(response.content)
    except ValidationError:
        return ProblemDetails(status=response.status_code, title=response.reason_phrase or None)

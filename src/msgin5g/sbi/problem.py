"""ProblemDetails and the exception that carries it from a handler to the wire.

TS 29.571 defines ProblemDetails, and TS 29.500 Table 5.2.7.2-1 lists the
protocol error causes. The causes specific to one service come from that
service's specification and are cited where they are defined.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"


class Cause(StrEnum):
    """Values of ProblemDetails.cause used by this project."""

    # TS 29.500 Table 5.2.7.2-1 (protocol and common application errors).
    INVALID_MSG_FORMAT = "INVALID_MSG_FORMAT"
    MANDATORY_IE_INCORRECT = "MANDATORY_IE_INCORRECT"
    MANDATORY_IE_MISSING = "MANDATORY_IE_MISSING"
    OPTIONAL_IE_INCORRECT = "OPTIONAL_IE_INCORRECT"
    MANDATORY_QUERY_PARAM_INCORRECT = "MANDATORY_QUERY_PARAM_INCORRECT"
    MANDATORY_QUERY_PARAM_MISSING = "MANDATORY_QUERY_PARAM_MISSING"
    OPTIONAL_QUERY_PARAM_INCORRECT = "OPTIONAL_QUERY_PARAM_INCORRECT"
    RESOURCE_URI_STRUCTURE_NOT_FOUND = "RESOURCE_URI_STRUCTURE_NOT_FOUND"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    UNSPECIFIED_NF_FAILURE = "UNSPECIFIED_NF_FAILURE"

    # Application errors of Nudm_UEAuthentication (TS 29.503) and
    # Nausf_UEAuthentication (TS 29.509).
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CONTEXT_NOT_FOUND = "CONTEXT_NOT_FOUND"
    AUTHENTICATION_REJECTED = "AUTHENTICATION_REJECTED"
    SERVING_NETWORK_NOT_AUTHORIZED = "SERVING_NETWORK_NOT_AUTHORIZED"
    UNSUPPORTED_PROTECTION_SCHEME = "UNSUPPORTED_PROTECTION_SCHEME"
    UPSTREAM_SERVER_ERROR = "UPSTREAM_SERVER_ERROR"
    AV_GENERATION_PROBLEM = "AV_GENERATION_PROBLEM"

    # NOTE: the copies of TS 29.535 read for this project list no cause for an
    # AF that the AAnF does not serve, so the AAnF uses this name for its 403.
    AF_NOT_AUTHORIZED = "AF_NOT_AUTHORIZED"


class InvalidParam(BaseModel):
    """One rejected parameter (TS 29.571 InvalidParam).

    For a JSON body attribute, `param` is a JSON Pointer (e.g. "/aKId"); for a
    query parameter, "query " plus its name; for a path segment, its name in
    braces (e.g. "{supiOrSuci}").
    """

    model_config = ConfigDict(extra="ignore")

    param: str
    reason: str | None = None


class ProblemDetails(BaseModel):
    """Error body of every SBI response with a 4xx or 5xx status."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    cause: str | None = None
    invalid_params: list[InvalidParam] | None = Field(
        default=None, alias="invalidParams", min_length=1
    )


@dataclass(frozen=True)
class Rejection:
    """One parameter named in a 400 response: its wire name and the reason it is invalid."""

    param: str
    reason: str


class SbiError(Exception):
    """An error that a handler returns to the peer as ProblemDetails.

    `detail` is sent to the peer and logged at INFO, so it must hold neither a
    key nor a SUPI or GPSI. Each error gets an `instance` URN that appears both
    in the response and in the log line, so that an operator can match a
    peer's report with the log.
    """

    def __init__(
        self,
        status: int,
        cause: Cause | str | None,
        detail: str,
        *,
        title: str | None = None,
        invalid_params: Sequence[Rejection] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.cause = str(cause) if cause is not None else None
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.invalid_params = tuple(invalid_params)
        self.instance = f"urn:uuid:{uuid.uuid4()}"

    @classmethod
    def bad_request(cls, cause: Cause, rejections: Sequence[Rejection]) -> "SbiError":
        """Build a 400 error that names each rejected parameter."""
        detail = "; ".join(f"{item.param}: {item.reason}" for item in rejections)
        return cls(400, cause, detail, invalid_params=rejections)

    def to_problem(self) -> ProblemDetails:
        invalid_params = [
            InvalidParam(param=item.param, reason=item.reason) for item in self.invalid_params
        ]
        return ProblemDetails(
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=self.instance,
            cause=self.cause,
            invalid_params=invalid_params or None,
        )

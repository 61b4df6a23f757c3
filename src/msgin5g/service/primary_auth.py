"""The UE side of 5G AKA against the AUSF, and the AKMA keys that follow from it.

The UE simulator speaks Nausf_UEAuthentication (TS 29.509) directly, playing
the SEAF/AMF too: it checks HRES* against HXRES* (TS 33.501 clause 6.1.3.2
step 10) before it sends RES* for confirmation. There is no NAS or NGAP.
"""

import hmac
import logging
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from msgin5g.crypto.aka import hxres_star, k_ausf, res_star, serving_network_name
from msgin5g.crypto.akma import a_tid, format_a_kid, k_akma
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import AuthenticationFailure, SynchFailure, Usim, UsimResponse

logger = logging.getLogger(__name__)

UE_AUTHENTICATIONS_PATH = "/nausf-auth/v1/ue-authentications"
AUTH_SUCCESS = "AUTHENTICATION_SUCCESS"


class PrimaryAuthenticationError(Exception):
    """5G AKA did not succeed. `cause` is a short code, and the message names what to check."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class AkmaKeys:
    """The UE's AKMA context after a successful primary authentication."""

    supi: str
    a_kid: str
    k_akma: bytes = field(repr=False)


async def authenticate(http: httpx.AsyncClient, profile: UeProfile, usim: Usim) -> AkmaKeys:
    """Run 5G AKA with the AUSF and derive K_AKMA and the A-KID (TS 33.535 clause 6.1).

    When the USIM reports a synchronisation failure, the UE sends AUTS in a
    new AuthenticationInfo (resynchronizationInfo of TS 29.509) and responds
    to the new challenge. It resynchronises once per call.
    """
    snn = serving_network_name(profile.mcc, profile.mnc)
    context_uri, challenge = await _start(http, profile, snn)
    rand = bytes.fromhex(challenge["rand"])
    try:
        response = usim.authenticate(rand, bytes.fromhex(challenge["autn"]))
    except SynchFailure as failure:
        await _abandon(http, context_uri)
        logger.info("the USIM reported a synchronisation failure; resynchronising with AUTS")
        resynchronization = {"rand": rand.hex(), "auts": failure.auts.hex()}
        context_uri, challenge = await _start(http, profile, snn, resynchronization)
        rand = bytes.fromhex(challenge["rand"])
        response = await _run_usim(http, usim, context_uri, rand, challenge)
    except AuthenticationFailure as failure:
        await _abandon(http, context_uri)
        raise PrimaryAuthenticationError(failure.cause, f"the USIM rejected AUTN: {failure}") from failure

    ue_res_star = res_star(response.ck, response.ik, snn, rand, response.res)
    _check_hres_star(rand, ue_res_star, challenge["hxresStar"])
    await _confirm(http, context_uri, ue_res_star)

    # TS 33.501 Annex A.2 on the UE side, then TS 33.535 Annex A.2 and A.3.
    ue_k_ausf = k_ausf(response.ck, response.ik, snn, response.sqn_xor_ak)
    a_kid = format_a_kid(
        profile.routing_indicator, a_tid(ue_k_ausf, profile.supi), profile.mcc, profile.mnc
    )
    return AkmaKeys(supi=profile.supi, a_kid=a_kid, k_akma=k_akma(ue_k_ausf, profile.supi))


async def _run_usim(
    http: httpx.AsyncClient, usim: Usim, context_uri: str, rand: bytes, challenge: dict
) -> UsimResponse:
    """Give RAND and AUTN to the USIM; abandon the context if it rejects them."""
    try:
        return usim.authenticate(rand, bytes.fromhex(challenge["autn"]))
    except AuthenticationFailure as failure:
        await _abandon(http, context_uri)
        raise PrimaryAuthenticationError(failure.cause, f"the USIM rejected AUTN: {failure}") from failure


async def _start(
    http: httpx.AsyncClient, profile: UeProfile, snn: str, resynchronization: dict | None = None
) -> tuple[str, dict]:
    """POST AuthenticationInfo; return the confirmation URI and the 5G AKA challenge."""
    uri = profile.ausf_uri.rstrip("/") + UE_AUTHENTICATIONS_PATH
    body = {"supiOrSuci": profile.supi, "servingNetworkName": snn}
    if resynchronization is not None:
        body["resynchronizationInfo"] = resynchronization
    reply = await http.post(uri, json=body)
    if reply.status_code != 201:
        raise PrimaryAuthenticationError(
            "AUSF_REJECTED", f"the AUSF answered {reply.status_code}: {_problem_text(reply)}"
        )

    document = reply.json()
    try:
        challenge = document["5gAuthData"]
        link = document["_links"]["5g-aka"]["href"]
        for name in ("rand", "autn", "hxresStar"):
            bytes.fromhex(challenge[name])
    except (KeyError, TypeError, ValueError) as error:
        raise PrimaryAuthenticationError(
            "AUSF_INVALID_RESPONSE", f"the AUSF sent an invalid UEAuthenticationCtx ({error!r})"
        ) from error
    return urljoin(uri, link), challenge


def _check_hres_star(rand: bytes, ue_res_star: bytes, hxres_star_hex: str) -> None:
    """The SEAF's check: HRES* computed from RES* must equal HXRES* from the AUSF."""
    if not hmac.compare_digest(hxres_star(rand, ue_res_star), bytes.fromhex(hxres_star_hex)):
        raise PrimaryAuthenticationError(
            "HRES_STAR_MISMATCH",
            "HRES* differs from the AUSF's HXRES*: the serving network name or the USIM keys differ",
        )


async def _confirm(http: httpx.AsyncClient, context_uri: str, ue_res_star: bytes) -> None:
    reply = await http.put(context_uri, json={"resStar": ue_res_star.hex()})
    if reply.status_code != 200:
        raise PrimaryAuthenticationError(
            "AUSF_REJECTED",
            f"the AUSF answered {reply.status_code} to RES*: {_problem_text(reply)}",
        )

    result = reply.json().get("authResult")
    if result != AUTH_SUCCESS:
        raise PrimaryAuthenticationError(
            "AUTHENTICATION_REJECTED", f"the AUSF did not accept RES* (authResult {result})"
        )


async def _abandon(http: httpx.AsyncClient, context_uri: str) -> None:
    """Delete the AUSF's authentication context after a failure at the UE."""
    try:
        await http.delete(context_uri)
    except httpx.HTTPError as error:
        logger.info("could not delete the AUSF authentication context: %s", error)


def _problem_text(reply: httpx.Response) -> str:
    """Return the ProblemDetails title, cause and detail of an error response, if it has them."""
    try:
        problem = reply.json()
    except ValueError:
        return reply.reason_phrase
    parts = [problem.get(name) for name in ("title", "cause", "detail")]
    return "; ".join(str(part) for part in parts if part) or reply.reason_phrase

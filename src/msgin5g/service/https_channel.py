"""The UE side of MSGin5G-1 over HTTPS with HTTP Digest keyed by K_AF (TS 33.535 B.1.2).

    result = await exchange_over_https(
        "127.0.0.1", 8443, "msgin5g.example.test", a_kid, k_akma,
        messages.RegistrationRequest("ue-service-1"), ca_file="certs/ca.pem")

The UE connects to host:port, sends the AF FQDN as SNI and Host, and verifies
the server certificate for that FQDN against the CA file. It sends the REG or
DEREG with the product token "3gpp-akma" in User-Agent. On the 401 challenge
it checks that the realm names the FQDN it connected to, derives K_AF for
AF_ID = FQDN || 01 00 01 yy zz with the cipher suite of its own TLS connection,
and responds with username = A-KID and password = base64(K_AF). A challenge with
stale=true is answered once more.
"""

import logging
import ssl
from typing import Literal

import httpx
from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g import __version__
from msgin5g.coap.tcp import MessageTooLarge
from msgin5g.crypto.akma import UA_HTTP_DIGEST, af_id, k_af, parse_a_kid
from msgin5g.service import messages
from msgin5g.service.channel import ChannelError
from msgin5g.ua import digest

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = f"msgin5g/{__version__} {digest.USER_AGENT_PRODUCT}"
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# HTTP status of an MSGin5G-1 response and the CoAP code it stands for
# (https_server maps them the other way). 200 depends on the operation.
COAP_CODE_FOR_HTTP = {
    201: Code.CREATED,
    400: Code.BAD_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    409: Code.CONFLICT,
    503: Code.SERVICE_UNAVAILABLE,
}
SUCCESS_CODE_FOR_200 = {
    messages.Operation.REG: Code.CHANGED,
    messages.Operation.DEREG: Code.DELETED,
    messages.Operation.BULK_REG: Code.CHANGED,
    messages.Operation.MSG: Code.CHANGED,
    messages.Operation.IMDN: Code.CHANGED,
    messages.Operation.INBOX: Code.CHANGED,
}


async def exchange_over_https(
    host: str,
    port: int,
    af_fqdn: str,
    a_kid: str,
    k_akma: bytes,
    request: messages.Request,
    *,
    ca_file: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    http2: bool = True,
    max_tls_version: Literal["1.2", "1.3"] | None = None,
) -> messages.RegistrationResult:
    """Send one MSGin5G-1 request over HTTPS, authenticate with Digest, and return the server's decision.

    Raises ValueError for an unusable A-KID or K_AKMA, and ChannelError when the
    server cannot be reached, fails verification or rejects the authentication.
    """
    parse_a_kid(a_kid)
    af_id(af_fqdn, UA_HTTP_DIGEST)  # Raises a ValueError for an invalid FQDN before connecting.
    context = _client_context(ca_file, max_tls_version)
    exchange = _Exchange(host, port, af_fqdn, a_kid, k_akma, request)

    async with httpx.AsyncClient(verify=context, http2=http2, timeout=timeout) as client:
        response = await exchange.send(client, None)
        if response.status_code != 401:
            return exchange.result(response)

        # The first challenge, then at most one more that says stale=true.
        for attempt in range(2):
            challenge = exchange.select_challenge(response, answered=attempt > 0)
            if attempt > 0 and not challenge.stale:
                raise ChannelError(
                    "the server rejected the Digest response: its K_AF differs from the UE's "
                    "(check the AF FQDN, or run primary authentication again if K_AKMA is stale)"
                )
            credentials = exchange.answer(challenge, response)
            response = await exchange.send(client, credentials.to_header())
            if response.status_code != 401:
                return exchange.result(response)

    raise ChannelError("the server sent stale=true again after a fresh nonce; check the clocks and retry")


def _client_context(ca_file: str, max_tls_version: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ChannelError(
            f"cannot load the CA certificates from {ca_file}: {getattr(error, 'strerror', None) or error}; "
            "give the PEM file of the CA that signed the server certificate (ca.pem from `msgin5g certs`)"
        ) from None
    if max_tls_version is not None:
        context.maximum_version = TLS_VERSIONS[max_tls_version]
    return context


class _Exchange:
    """One request and its Digest round trips."""

    def __init__(
        self, host: str, port: int, af_fqdn: str, a_kid: str, k_akma: bytes, request: messages.Request
    ) -> None:
        self._af_fqdn = af_fqdn
        self._a_kid = a_kid
        self._k_akma = k_akma
        self._request = request
        self._address = f"{host}:{port}"
        self._path = "/" + "/".join(request.operation.path)
        shown_host = f"[{host}]" if ":" in host else host
        self._url = f"https://{shown_host}:{port}{self._path}"
        self._host_header = f"{af_fqdn}:{port}"
        self._nc = 0

    async def send(self, client: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
        headers = {
            "Host": self._host_header,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        body = messages.build_request(self._request).payload
        try:
            return await client.post(
                self._url, content=bytes(body), headers=headers,
                extensions={"sni_hostname": self._af_fqdn},
            )
        except httpx.ConnectError as error:
            raise ChannelError(self._connect_cause(error)) from error
        except httpx.TimeoutException as error:
            raise ChannelError(f"{self._address} did not respond in time: {error}") from error
        except httpx.HTTPError as error:
            raise ChannelError(f"HTTPS request to {self._address} failed: {error}") from error

    def _connect_cause(self, error: httpx.ConnectError) -> str:
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return (
                f"the server certificate at {self._address} does not verify for {self._af_fqdn!r} "
                f"against the CA file ({text}); check the AF FQDN and the CA file"
            )
        return f"cannot connect to {self._address}: {text}"

    def select_challenge(self, response: httpx.Response, *, answered: bool) -> digest.Challenge:
        """Return the AKMA Digest challenge to answer; abort on a realm of another FQDN."""
        try:
            challenges = digest.parse_challenges(response.headers.get_list("www-authenticate"))
        except digest.DigestError as error:
            raise ChannelError(f"the server sent an invalid WWW-Authenticate field: {error}") from None

        akma = [c for c in challenges if digest.realm_fqdn(c.realm) is not None]
        for challenge in akma:
            if digest.realm_fqdn(challenge.realm) != self._af_fqdn:
                raise ChannelError(
                    f"the AKMA realm {challenge.realm!r} names another AF than {self._af_fqdn!r}, "
                    "the FQDN this UE connected to; the connection was closed without answering"
                )
        usable = [
            c for c in akma if c.algorithm in digest.ALGORITHMS and digest.QOP_AUTH in c.qop
        ]
        if usable:
            return usable[0]

        detail = response.text.strip() or "no detail"
        if answered:
            raise ChannelError(f"the server could not obtain K_AF for this A-KID: {detail}")
        if akma:
            raise ChannelError(
                "the server offers AKMA Digest only with an algorithm or qop this UE does not "
                f"support (supported: {', '.join(digest.ALGORITHMS)} with qop 'auth')"
            )
        raise ChannelError(f"the server did not offer AKMA Digest authentication: {detail}")

    def answer(self, challenge: digest.Challenge, response: httpx.Response) -> digest.Credentials:
        """Derive K_AF for the cipher suite of this connection and answer `challenge`."""
        ua_protocol_id = _negotiated_ua_protocol_id(response)
        key = k_af(self._k_akma, af_id(self._af_fqdn, ua_protocol_id))
        self._nc += 1
        return digest.answer_challenge(
            challenge,
            username=self._a_kid,
            password=digest.digest_password(key),
            method="POST",
            uri=self._path,
            nc=self._nc,
        )

    def result(self, response: httpx.Response) -> messages.RegistrationResult:
        """Return the decision carried by a response other than 401."""
        operation = self._request.operation
        code = COAP_CODE_FOR_HTTP.get(response.status_code)
        if response.status_code == 200:
            code = SUCCESS_CODE_FOR_200[operation]
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code == 413:
            raise MessageTooLarge(
                f"the server rejected the request body as too large (HTTP 413: "
                f"{response.text.strip() or 'no detail'})"
            )
        if code is None or media_type != "application/json":
            raise ChannelError(
                f"the server responded {response.status_code} without an MSGin5G-1 result: "
                f"{response.text.strip() or 'no detail'}"
            )

        message = Message(code=code, payload=response.content)
        message.opt.content_format = messages.CONTENT_FORMAT_JSON
        try:
            return messages.parse_response(operation, message)
        except ValueError as error:
            raise ChannelError(str(error)) from None


def _negotiated_ua_protocol_id(response: httpx.Response) -> bytes:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        raise ChannelError("the TLS cipher suite of the connection is unknown, so K_AF cannot be derived")
    name = ssl_object.cipher()[0]
    logger.debug("HTTPS connection uses %s with %s", ssl_object.version(), name)
    try:
        return digest.ua_protocol_id_for_cipher(name)
    except ValueError as error:
        raise ChannelError(str(error)) from None

"""Conformance run: schemathesis sends generated requests to each NF, checked against the official files.

The UDM, AUSF, AAnF and the CM server run on loopback in a background
thread, each NF on its own socket. Schemathesis sends HTTP/1.1 through
requests, which Hypercorn serves on the same port as h2c. Schemathesis loads the
3GPP OpenAPI files as they are: it resolves the relative $refs to
TS29571_CommonData.yaml itself. The files' servers are `{apiRoot}/<api>/v1`,
which it cannot reach, so every call passes base_url = the NF's URI plus
the API root of the file.

Each operation the NF implements gets schema-valid (positive) and invalid
(negative) cases, derandomized so that a run is repeatable. Two checks
apply to every response: no 5xx (`not_a_server_error`, except the declared
501 for a SUCI) and the status, the content type and the body conform to
the file (`response_schema_conformance`, `status_code_conformance`,
`content_type_conformance`).
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from schemathesis.specs.openapi.checks import response_schema_conformance

from msgin5g.cli.provision import provision
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AanfConfig
from msgin5g.nf.ausf.app import ausf_app
from msgin5g.nf.ausf.config import AusfConfig, HomeNetwork
from msgin5g.nf.cm.app import cm_app
from msgin5g.nf.cm.config import CmConfig
from msgin5g.nf.config import Peer
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig
from msgin5g.sbi.server import bind_socket, serve, socket_uri

MAX_EXAMPLES = 30
START_TIMEOUT = 10.0


def not_a_server_error_but_suci(ctx, response, case):
    """`not_a_server_error`, except the declared 501 for a SUCI, which this UDM does not de-conceal.

    TS 29.503 and TS 29.509 declare 501 with UNSUPPORTED_PROTECTION_SCHEME,
    and the files' SupiOrSuci pattern admits any "suci-..." text.
    """
    if response.status_code == 501 and response.json().get("cause") == "UNSUPPORTED_PROTECTION_SCHEME":
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_suci,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Operations whose only input is a plain string path parameter: no value of
# it violates the schema, so there are no negative cases to generate.
NO_NEGATIVE_CASES = frozenset({("ausf", "DELETE")})


@dataclass(frozen=True)
class Target:
    nf: str
    spec_file: str
    api_root: str
    operations: tuple[tuple[str, str], ...]


TARGETS = [
    Target(
        "udm",
        "TS29503_Nudm_UEAU.yaml",
        "/nudm-ueau/v1",
        (("POST", "/{supiOrSuci}/security-information/generate-auth-data"),),
    ),
    Target(
        "ausf",
        "TS29509_Nausf_UEAuthentication.yaml",
        "/nausf-auth/v1",
        (
            ("POST", "/ue-authentications"),
            ("POST", "/ue-authentications/deregister"),
            ("PUT", "/ue-authentications/{authCtxId}/5g-aka-confirmation"),
            ("DELETE", "/ue-authentications/{authCtxId}/5g-aka-confirmation"),
        ),
    ),
    Target(
        "aanf",
        "TS29535_Naanf_AKMA.yaml",
        "/naanf-akma/v1",
        (
            ("POST", "/register-anchorkey"),
            ("POST", "/retrieve-applicationkey"),
            ("POST", "/remove-context"),
        ),
    ),
    Target("cm", "TS29549_SS_UserProfileRetrieval.yaml", "/ss-upr/v1", (("GET", "/val-services"),)),
]

SUBSCRIBER = {
    "supi": "imsi-001010000000001",
    "k": "465b5ce8b199b49faa5f0a2ee238a6bc",
    "opc": "cd63cb71954a9f4e48a5994e37a02baf",
    "amf": "8000",
    "sqn": 0,
    "akma_allowed": True,
    "routing_indicator": "0012",
}


class NetworkThread:
    """The four NFs served by one event loop in a daemon thread."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.uris: dict[str, str] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._shutdown: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="nf-network", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(START_TIMEOUT) or self.error is not None:
            raise RuntimeError(f"the NFs did not start: {self.error!r}")

    def stop(self) -> None:
        if self._shutdown is not None:
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(START_TIMEOUT)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported to the test thread by start()
            self.error = error
            self.ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._shutdown = asyncio.Event()
        async with AsyncExitStack() as resources:
            servers = []

            async def start(name: str, app) -> str:
                sock = bind_socket("127.0.0.1", 0)
                resources.callback(sock.close)
                servers.append(asyncio.create_task(serve(app, sock, self._shutdown)))
                self.uris[name] = socket_uri(sock)
                return self.uris[name]

            database = self.database
            udm_uri = await start("udm", await resources.enter_async_context(udm_app(UdmConfig(database=database))))
            aanf_uri = await start("aanf", await resources.enter_async_context(aanf_app(AanfConfig(database=database))))
            ausf_config = AusfConfig(
                database=database,
                home_network=HomeNetwork(mcc="001", mnc="01"),
                udm=Peer(uri=udm_uri),
                aanf=Peer(uri=aanf_uri),
            )
            await start("ausf", await resources.enter_async_context(ausf_app(ausf_config)))
            await start("cm", await resources.enter_async_context(cm_app(CmConfig(database=database))))
            self.ready.set()
            await self._shutdown.wait()
            await asyncio.gather(*servers)


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[NetworkThread]:
    database = tmp_path_factory.mktemp("conformance") / "deployment.sqlite3"
    provision(database, {"subscribers": [SUBSCRIBER]})
    thread = NetworkThread(database)
    try:
        thread.start()
        yield thread
    finally:
        thread.stop()


def operation_ids() -> list[tuple[Target, str, str]]:
    return [(target, method, path) for target in TARGETS for method, path in target.operations]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("target", "method", "path"),
    operation_ids(),
    ids=[f"{target.nf}-{method}-{path}" for target, method, path in operation_ids()],
)
def test_conformance(network, shared_dir, target, method, path, mode):
    if mode is GenerationMode.NEGATIVE and (target.nf, method) in NO_NEGATIVE_CASES:
        pytest.skip("every value of the only parameter is schema-valid")
    schema = openapi.from_path(shared_dir / "openapi" / target.spec_file)
    operation = schema[path][method]
    base_url = network.uris[target.nf] + target.api_root

    with requests.Session() as session:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call(base_url=base_url, session=session, timeout=5)
            case.validate_response(response, checks=CHECKS)

        check()


# Cases with the provisioned subscriber, so that success responses are checked too.
KNOWN_GOOD = [
    (
        "udm",
        "POST",
        "/{supiOrSuci}/security-information/generate-auth-data",
        {
            "path_parameters": {"supiOrSuci": SUBSCRIBER["supi"]},
            "body": {
                "servingNetworkName": "5G:mnc001.mcc001.3gppnetwork.org",
                "ausfInstanceId": "9b1f0c2e-4a55-4c1b-8f7e-2d9a6f3b1c00",
            },
        },
        200,
    ),
    (
        "ausf",
        "POST",
        "/ue-authentications",
        {"body": {"supiOrSuci": SUBSCRIBER["supi"], "servingNetworkName": "5G:mnc001.mcc001.3gppnetwork.org"}},
        201,
    ),
    ("ausf", "POST", "/ue-authentications/deregister", {"body": {"supi": SUBSCRIBER["supi"]}}, 204),
]


@pytest.mark.parametrize(
    ("nf", "method", "path", "fixed", "status"),
    KNOWN_GOOD,
    ids=[f"{nf}-{method}-{path}" for nf, method, path, _, _ in KNOWN_GOOD],
)
def test_conformance_success(network, shared_dir, nf, method, path, fixed, status):
    target = next(target for target in TARGETS if target.nf == nf)
    schema = openapi.from_path(shared_dir / "openapi" / target.spec_file)
    operation = schema[path][method]
    base_url = network.uris[nf] + target.api_root
    statuses = []

    with requests.Session() as session:

        @settings(max_examples=3, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(media_type="application/json", **fixed))
        def check(case):
            response = case.call(base_url=base_url, session=session, timeout=5)
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        check()
    assert status in statuses

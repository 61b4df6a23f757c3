"""A whole deployment on loopback: UDM, AUSF, AAnF, CM server and MSGin5G Server.

Each service runs as its own `msgin5g serve` process with its own YAML file
in the working folder, and all share one SQLite file there. Optionally a NEF
and a second MSGin5G Server outside the operator's domain, which reaches AKMA
through the NEF, run too. The services
start in dependency order, because the AUSF needs the URIs of the UDM and the
AAnF, and the MSGin5G Server those of the AAnF and the CM server.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from msgin5g.deployment.processes import ServiceProcess, start_service, stop_process

DATABASE_FILE = "msgin5g.sqlite3"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DeploymentSettings:
    """Values from the demo plan that the service configurations need."""

    mcc: str
    mnc: str
    server_fqdn: str
    k_af_lifetime_seconds: int = 3600
    # Server certificate and key for the https-digest profile; without them,
    # the server offers only the PSK profiles.
    certfile: Path | None = None
    keyfile: Path | None = None
    # A second MSGin5G Server outside the operator's domain, which reaches
    # AKMA through the NEF; None starts neither it nor the NEF.
    external_fqdn: str | None = None


@dataclass
class LocalDeployment:
    """Running services by name, and where the MSGin5G Server listens."""

    workdir: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # The external server's client secret at the NEF, when there is one.
    client_secret: str | None = field(default=None, repr=False)

    @property
    def database(self) -> Path:
        return self.workdir / DATABASE_FILE

    @property
    def ausf_uri(self) -> str:
        return self.services["ausf"].uri

    @property
    def server_address(self) -> tuple[str, int]:
        """Host and port of the MSGin5G Server's PSK-TLS 1.3 listener."""
        return self.profile_address("psk-tls1.3")

    def profile_address(self, profile: str, server_name: str = "server") -> tuple[str, int]:
        """Host and port of a MSGin5G Server's listener for a security profile."""
        server = self.services[server_name]
        parts = urlsplit(server.uris.get(profile, server.uri if profile == "psk-tls1.3" else ""))
        if parts.port is None:
            raise KeyError(f"the MSGin5G Server has no {profile} listener")
        return parts.hostname or LOOPBACK, parts.port

    async def stop(self) -> None:
        """Stop every service, the last started first."""
        for service in reversed(list(self.services.values())):
            await stop_process(service.process)
        self.services.clear()


@contextlib.asynccontextmanager
async def running_deployment(workdir: Path, settings: DeploymentSettings) -> AsyncIterator[LocalDeployment]:
    """Start every service in WORKDIR; stop them all when the block ends, also on error or Ctrl-C.

    The caller provisions the database (`deployment.database`) before or after
    the start; the services read it per request.
    """
    deployment = LocalDeployment(workdir=workdir)
    try:
        await _start_all(deployment, settings)
        yield deployment
    finally:
        # Runs on errors and on cancellation (Ctrl-C cancels the main task once).
        await deployment.stop()


async def _start_all(deployment: LocalDeployment, settings: DeploymentSettings) -> None:
    database = str(deployment.database)
    await _start_group(deployment, {
        "udm": {"database": database},
        "aanf": {"database": database, "k_af_lifetime": settings.k_af_lifetime_seconds},
        "cm": {"database": database},
    })

    home_network = {"mcc": settings.mcc, "mnc": settings.mnc}
    await _start_group(deployment, {
        "ausf": {
            "database": database,
            "udm": {"uri": deployment.services["udm"].uri},
            "aanf": {"uri": deployment.services["aanf"].uri},
            "home_network": home_network,
        },
        "server": {
            "database": database,
            "fqdn": settings.server_fqdn,
            "aanf": {"uri": deployment.services["aanf"].uri},
            "cm": {"uri": deployment.services["cm"].uri},
            "profiles": _server_profiles(settings),
        },
        **_nef_config(deployment, settings),
    })
    if settings.external_fqdn is not None:
        await _start_group(deployment, {"server-nef": _external_server_config(deployment, settings)})


# The external server's OAuth 2.0 client at the NEF. The secrets are made anew
# for each deployment and stay in its working folder.
EXTERNAL_CLIENT_ID = "msgin5g-server-external"


def _nef_config(deployment: LocalDeployment, settings: DeploymentSettings) -> dict[str, Any]:
    if settings.external_fqdn is None:
        return {}
    deployment.client_secret = secrets.token_hex(16)
    return {"nef": {
        "aanf": {"uri": deployment.services["aanf"].uri},
        "udm": {"uri": deployment.services["udm"].uri},
        "oauth": {"signing_key": secrets.token_hex(32)},
        "afs": [{
            "client_id": EXTERNAL_CLIENT_ID,
            "client_secret": deployment.client_secret,
            "fqdn": settings.external_fqdn,
        }],
    }}


def _external_server_config(deployment: LocalDeployment, settings: DeploymentSettings) -> dict[str, Any]:
    return {
        "database": str(deployment.database),
        "fqdn": settings.external_fqdn,
        "nef": {
            "uri": deployment.services["nef"].uri,
            "client_id": EXTERNAL_CLIENT_ID,
            "client_secret": deployment.client_secret,
        },
        "cm": {"uri": deployment.services["cm"].uri},
        "profiles": _server_profiles(settings),
    }


def _server_profiles(settings: DeploymentSettings) -> dict[str, Any]:
    """Return every security profile on its own free loopback port."""
    def any_port() -> dict[str, Any]:
        return {"listen": {"host": LOOPBACK, "port": 0}}

    profiles: dict[str, Any] = {"psk-tls1.3": any_port(), "psk-tls1.2": any_port()}
    if settings.certfile is not None and settings.keyfile is not None:
        profiles["https-digest"] = {
            **any_port(),
            "options": {"certfile": str(settings.certfile), "keyfile": str(settings.keyfile)},
        }
    profiles["psk-dtls1.2"] = any_port()
    return profiles


async def _start_group(deployment: LocalDeployment, configs: dict[str, dict[str, Any]]) -> None:
    """Start services that do not depend on each other, concurrently."""

    async def start_and_record(name: str, path: Path) -> None:
        # Recorded in the same step as the start returns, so that a cancellation
        # of the group cannot lose a service that is already running.
        service = "server" if name.startswith("server") else name
        deployment.services[name] = await start_service(name, path, deployment.workdir, service=service)

    paths = {name: _write_config(deployment.workdir, name, config) for name, config in configs.items()}
    results = await asyncio.gather(
        *(start_and_record(name, path) for name, path in paths.items()),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _write_config(workdir: Path, name: str, settings: dict[str, Any]) -> Path:
    # A server's listeners come from its profiles; every other service has one SBI address.
    document = settings if name.startswith("server") else {"sbi": {"host": LOOPBACK, "port": 0}, **settings}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path

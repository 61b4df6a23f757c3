"""The demo's key lifecycle round: a session outlives its K_AF, then the network re-keys the UE.

TS 33.535 clause 6: K_AF expires at the time the AAnF set, and a new primary
authentication replaces the UE's AKMA context (a new A-KID; the old one then
yields no K_AF). `UeSession` recovers from both by re-running primary
authentication; the demo reports each recovery round and its outcome.
"""

import asyncio
from dataclasses import replace
from typing import Any

from msgin5g.deployment.local import LocalDeployment
from msgin5g.deployment.plan import DemoPlan, PlannedUe
from msgin5g.service.client import REGISTERED, new_http_client
from msgin5g.service.primary_auth import authenticate
from msgin5g.service.session import UeSession
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

# Seconds the channel is held beyond the K_AF lifetime, so the server closes it first.
HOLD_MARGIN_SECONDS = 1.5
EXPECTED_KINDS = ("expiry", "rekey")


async def run_lifecycle(profile: UeProfile, ue: PlannedUe, k_af_lifetime: int) -> dict[str, Any]:
    """Hold a PSK-TLS 1.3 registration past K_AF expiry, then re-key the UE; report the rounds."""
    profile = replace(profile, security_profile="psk-tls1.3")
    usim = Usim(k=ue.k, opc=ue.opc)

    async with new_http_client() as http, UeSession(http, profile, usim) as session:
        held = await session.keep_registered(k_af_lifetime + HOLD_MARGIN_SECONDS)
        await session.close()

        # The network authenticates the UE again (for example after it re-attached),
        # so the AAnF replaces its AKMA context and the session's A-KID is stale.
        # The server may use the K_AF it cached for that A-KID until its expiry,
        # so the session reconnects only after that.
        await authenticate(http, profile, usim)
        await asyncio.sleep(k_af_lifetime + HOLD_MARGIN_SECONDS)
        again = await session.register()
        rounds = session.lifecycle

    kinds = [round_["kind"] for round_ in rounds]
    ok = (
        held.outcome == REGISTERED
        and again.outcome == REGISTERED
        and all(kind in kinds for kind in EXPECTED_KINDS)
        and all(round_["outcome"] == "ok" for round_ in rounds)
    )
    return {"ue": ue.label, "profile": profile.security_profile, "rounds": rounds, "as_expected": ok}


def lifecycle_profile(
    deployment: LocalDeployment, plan: DemoPlan, ue: PlannedUe, ca_file: str, build
) -> UeProfile:
    """Return the UE's profile pointed at the operator server's PSK-TLS 1.3 listener."""
    return build(replace(ue, profile="psk-tls1.3", via="aanf"), plan, deployment, ca_file)

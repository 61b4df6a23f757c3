"""`msgin5g serve SERVICE --config FILE`: run one network function or the MSGin5G Server.

Once the service listens, it prints exactly one line on stdout and flushes it:

    {"event": "ready", "service": "udm", "uri": "http://127.0.0.1:40123"}

Logs go to stderr. SIGTERM or SIGINT stops the service cleanly (exit status
0); an invalid configuration exits with status 2 before anything listens.
"""

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from msgin5g.cli.errors import UsageError
from msgin5g.nf.config import ConfigError
from msgin5g.store.sqlite import StoreError

logger = logging.getLogger(__name__)

ReadyCallback = Callable[..., None]
ServiceRunner = Callable[[Path, ReadyCallback, asyncio.Event], Awaitable[None]]

# Service name -> (module, coroutine function). Each function has the
# signature of ServiceRunner: it loads its configuration, calls `ready` with
# its URI once it listens, and returns after the shutdown event is set. The
# modules are imported only when their service is started.
SERVICE_RUNNERS: dict[str, tuple[str, str]] = {
    "udm": ("msgin5g.nf.udm.app", "run"),
    "ausf": ("msgin5g.nf.ausf.app", "run"),
    "aanf": ("msgin5g.nf.aanf.app", "run"),
    "cm": ("msgin5g.nf.cm.app", "run"),
    "cf": ("msgin5g.nf.cf.app", "run"),
    "nef": ("msgin5g.nf.nef.app", "run"),
    "server": ("msgin5g.service.profiles", "run"),
}

# Loggers of the HTTP/2 stack: httpx logs each request URL at INFO, and SBI
# URLs contain SUPIs, which this project logs only at DEBUG.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "h2")


CONFIG_KEYS_HELP = """\
configuration keys (a relative database path is taken from the file's folder):
  udm, cm, aanf, ausf, server also take store {backend: sqlite (default),
            redis with url, or redis-cluster with nodes (host:port list),
            key_prefix, timeout (s)}; with Redis, database is optional
            and unused, and a file with both logs a WARNING at start
  udm, cm   sbi {host, port, server: granian (default) or hypercorn},
            database
  cf        sbi, associations (list of {ue_service_id, ue_id,
            relation: own (default) or gateway})
  aanf      sbi, database, k_af_lifetime (s), context_lifetime (s),
            authorized_afs (list of AF FQDNs), oauth {signing_key (hex),
            audience} (retrieve-applicationkey then needs a bearer token)
  nef       sbi, aanf {uri, timeout (s), signing_key (hex), audience},
            udm {uri, timeout (s)}, oauth {signing_key (hex),
            token_lifetime (s)}, afs (list of {client_id, client_secret,
            fqdn, scopes})
  ausf      sbi, database, udm {uri, timeout (s)}, aanf {uri, timeout (s)},
            home_network {mcc, mnc}, auth_context_lifetime (s), nf_instance_id
  server    fqdn, aanf {uri, timeout (s)} or nef {uri, timeout (s),
            client_id, client_secret}, cm {uri, timeout (s)} or
            configuration_function {uri, timeout (s)}, database,
            limits {max_connections, handshake_timeout (s),
            max_message_size (octets), max_client_hello_size (octets)},
            messaging {default_expiry (s), max_expiry (s),
            max_queued_per_recipient, max_inbox_octets, expiry_interval (s)},
            and either listen {host, port} (one psk-tls1.3 listener) or
            profiles {NAME: {listen {host, port}, options {...}}} with NAME:
              psk-tls1.3    options: allow_psk_ke (default false)
              psk-tls1.2    options: cipher_suites (OpenSSL names)
              https-digest  options: certfile, keyfile (PEM, from msgin5g
                            certs), algorithms (SHA-256, MD5),
                            nonce_lifetime (s), ciphers, min_tls_version
              psk-dtls1.2   options: mtu (octets), max_handshakes,
                            idle_timeout (s)
port 0 picks a free port; the ready line gives the real one.
"""


def load_runner(service: str) -> ServiceRunner:
    module_name, function_name = SERVICE_RUNNERS[service]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, function_name)
    except (ImportError, AttributeError) as error:
        raise UsageError(
            f"service {service!r} is not available in this installation "
            f"({module_name}.{function_name}: {error})"
        ) from None


def print_ready(service: str, uri: str, **extra: object) -> None:
    """Print the ready line; the MSGin5G Server adds `uris`, its URI per profile."""
    print(json.dumps({"event": "ready", "service": service, "uri": uri, **extra}), flush=True)


async def serve_service(service: str, config_path: Path, runner: ServiceRunner) -> None:
    """Run `runner` until SIGTERM or SIGINT."""
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, shutdown.set)

    logger.info("starting %s with configuration %s", service, config_path)
    await runner(config_path, lambda uri, **extra: print_ready(service, uri, **extra), shutdown)


def configure_logging(level_name: str) -> None:
    level = getattr(logging, level_name.upper())
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if level <= logging.DEBUG:
        # At DEBUG, request URLs (with SUPIs) may appear, but never the frame dumps.
        logging.getLogger("httpx").setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    if not args.config.is_file():
        raise UsageError(f"configuration file {args.config} not found: give the path of the service's YAML file")
    configure_logging(args.log_level)
    runner = load_runner(args.service)
    try:
        asyncio.run(serve_service(args.service, args.config, runner))
    except ConfigError as error:
        raise UsageError(str(error)) from None
    except (OSError, StoreError) as error:
        logger.error("%s stopped: %s", args.service, error)
        exit_past_native_threads(1)
        return 1
    logger.info("%s exited cleanly", args.service)
    exit_past_native_threads(0)
    return 0


def exit_past_native_threads(status: int) -> None:
    """End the process now, once Granian has served in it; otherwise return.

    Granian's Rust I/O threads outlive the event loop, and one of them may
    panic while the interpreter finalizes, which aborts the process (SIGABRT)
    after a clean stop. The service's work is done here, so the logs and
    stdout are flushed and the process exits without finalization.
    """
    if "granian" not in sys.modules:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a core network function or the MSGin5G Server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CONFIG_KEYS_HELP,
        description=(
            "Run one service until SIGTERM or SIGINT. When it listens, the service prints one "
            'JSON line on stdout: {"event": "ready", "service": ..., "uri": ...}. '
            "Logs go to stderr."
        ),
    )
    parser.add_argument("service", choices=sorted(SERVICE_RUNNERS), help="the service to run")
    parser.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="the service's YAML configuration"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning"),
        default="info",
        help="stderr log level (SUPIs appear only at debug; default: info)",
    )
    parser.set_defaults(handler=run)

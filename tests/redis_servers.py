"""Redis servers for the tests: one single instance and one three-master cluster.

A pytest plugin (loaded from conftest.py). The session fixture `redis_servers`
uses the servers that MSGIN5G_TEST_REDIS_URL and MSGIN5G_TEST_REDIS_CLUSTER
(comma-separated HOST:PORT nodes) name, as `.ci/run` starts them with
scripts/redis-test-servers. Without them it starts its own `redis-server`
processes on free loopback ports in a temporary folder, the first time a
test requests it, and stops them when the session ends; under pytest-xdist
each worker process starts its own set. Tests share the servers, so each
test uses its own key prefix (`store_selection`).

A missing `redis-server` fails the tests with the command that installs it.
"""

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from msgin5g.store.redis import StoreSelection

BACKENDS = ("sqlite", "redis", "redis-cluster")
CLUSTER_MASTERS = 3
START_TIMEOUT_SECONDS = 20.0
INSTALL_HINT = "install it with 'apt-get install redis-server' (.ci/run does this)"


@dataclass(frozen=True)
class RedisServers:
    """Addresses of the servers that this session started."""

    single_url: str
    cluster_nodes: tuple[str, ...]

    def selection(self, backend: str, key_prefix: str) -> StoreSelection:
        """Return the `store:` section for `backend`, with a key prefix of its own."""
        if backend == "redis":
            return StoreSelection(backend="redis", url=self.single_url, key_prefix=key_prefix)
        if backend == "redis-cluster":
            return StoreSelection(
                backend="redis-cluster", nodes=list(self.cluster_nodes), key_prefix=key_prefix
            )
        return StoreSelection()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {START_TIMEOUT_SECONDS} s")


def start_server(binary: str, folder: Path, cluster: bool) -> tuple[subprocess.Popen, int]:
    """Start one redis-server without persistence; return the process and its port."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    arguments = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log",
    ]
    if cluster:
        arguments += [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(free_port()), "--cluster-node-timeout", "5000",
        ]
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: process.poll() is None and ping(port), f"redis-server on port {port} answering PING")
    except RuntimeError:
        process.kill()
        raise RuntimeError(f"redis-server on port {port} did not start; see {folder / 'redis.log'}") from None
    return process, port


def cluster_ok(cli: str, port: int) -> bool:
    result = subprocess.run(
        [cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=5
    )
    return "cluster_state:ok" in result.stdout


def create_cluster(cli: str, ports: list[int]) -> None:
    nodes = [f"127.0.0.1:{port}" for port in ports]
    result = subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout}{result.stderr}")
    for port in ports:
        wait_until(lambda port=port: cluster_ok(cli, port), f"cluster_state:ok on port {port}")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServers]:
    """Start one Redis and a three-master Redis Cluster on loopback; stop them at the end."""
    external = _servers_from_environment()
    if external is not None:
        yield external
        return

    binary = require_binary("redis-server")
    cli = require_binary("redis-cli")
    folder = tmp_path_factory.mktemp("redis")
    processes: list[subprocess.Popen] = []
    try:
        single, single_port = start_server(binary, folder / "single", cluster=False)
        processes.append(single)
        cluster_ports = []
        for index in range(CLUSTER_MASTERS):
            process, port = start_server(binary, folder / f"cluster-{index}", cluster=True)
            processes.append(process)
            cluster_ports.append(port)
        create_cluster(cli, cluster_ports)
        yield RedisServers(
            single_url=f"redis://127.0.0.1:{single_port}/0",
            cluster_nodes=tuple(f"127.0.0.1:{port}" for port in cluster_ports),
        )
    finally:
        stop(processes)


def _servers_from_environment() -> RedisServers | None:
    url = os.environ.get("MSGIN5G_TEST_REDIS_URL")
    nodes = os.environ.get("MSGIN5G_TEST_REDIS_CLUSTER")
    if not url and not nodes:
        return None
    if not url or not nodes:
        pytest.fail(
            "set both MSGIN5G_TEST_REDIS_URL and MSGIN5G_TEST_REDIS_CLUSTER, or neither "
            "(scripts/redis-test-servers start prints both)",
            pytrace=False,
        )
    return RedisServers(single_url=url, cluster_nodes=tuple(node.strip() for node in nodes.split(",")))


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend under test: each test using it runs on all three."""
    return request.param


@pytest.fixture
def store_selection(request: pytest.FixtureRequest, store_backend: str) -> StoreSelection:
    """The `store:` section for `store_backend`, with a key prefix unique to this test."""
    if store_backend == "sqlite":
        return StoreSelection()
    servers: RedisServers = request.getfixturevalue("redis_servers")
    return servers.selection(store_backend, f"test-{uuid.uuid4().hex[:12]}")

"""The SQLite backend: one database file per deployment, shared by all network functions.

Each network function runs in its own process with its own connection and
owns its own tables (it creates them when missing). The connection settings
make writes durable and safe across processes:

- WAL journal, so readers do not block the writer;
- synchronous=FULL, so a committed write survives a power loss;
- a busy timeout, so a writer waits for another process's lock instead of
  failing at once.

sqlite3 calls block, so `SqliteDatabase` runs them on a single worker thread,
off the event loop. One thread per store also serializes the calls of one
process; SQLite's file locks serialize the processes.
"""

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# UPDATE ... RETURNING needs SQLite 3.35; Python 3.13 builds ship newer ones.
MIN_SQLITE_VERSION = (3, 35, 0)


class StoreError(Exception):
    """The database file cannot be opened or used; the message names the file and the fix."""


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the database file with the project's settings (blocking call).

    The connection is in autocommit mode: use `transaction()` to group writes.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise StoreError(
            f"SQLite {sqlite3.sqlite_version} is too old: UPDATE ... RETURNING needs 3.35 or newer"
        )
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as error:
        raise StoreError(
            f"cannot open database {path}: {error}; check that the folder exists and is writable"
        ) from error
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block as one write transaction, taking the write lock at once.

    BEGIN IMMEDIATE makes a second writer wait (busy timeout) at the start
    instead of failing at its first write.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class SqliteDatabase:
    """A connection to the deployment database, used from asyncio code.

    Every call runs on the one worker thread that owns the connection.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None

    async def open(self) -> "SqliteDatabase":
        self._connection = await self._submit(lambda: connect(self.path))
        logger.debug("opened database %s", self.path)
        return self

    async def run[T](self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Call `function(connection)` on the worker thread and return its result."""
        connection = self._connection
        if connection is None:
            raise StoreError(f"database {self.path} is not open: call open() first")
        return await self._submit(lambda: function(connection))

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._submit(connection.close)
        self._executor.shutdown(wait=True)

    async def _submit[T](self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

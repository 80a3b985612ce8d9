"""ClickHouse access for every process, through clickhouse-connect.

The same code serves both deployments: `chdb://<dir>` runs the real engine in-process
(one process per data folder, no async client), `http(s)://` talks to a server.
Queries from async code go through `Store`, a small thread pool with one client per
thread, so a blocking call never runs on the event loop.
"""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import clickhouse_connect
from clickhouse_connect.driver.client import Client


def connect(dsn: str, database: str | None = None) -> Client:
    return clickhouse_connect.get_client(dsn=dsn, database=database) if database else clickhouse_connect.get_client(dsn=dsn)


class Store:
    def __init__(self, dsn: str, database: str, threads: int = 4):
        self.dsn, self.database = dsn, database
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clickhouse")

    def client(self) -> Client:
        """The calling thread's client (clients are not safe to share between threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = connect(self.dsn, self.database)
        return client

    def query_rows(self, sql: str, parameters: dict | None = None) -> list[dict]:
        result = self.client().query(sql, parameters=parameters)
        return list(result.named_results())

    async def rows(self, sql: str, parameters: dict | None = None) -> list[dict]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.query_rows, sql, parameters)

    async def tuples(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        """The rows as tuples: no dict per row, for answers of thousands of rows."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.client().query(sql, parameters=parameters).result_rows)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

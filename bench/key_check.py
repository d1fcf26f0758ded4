"""What the per-request key check costs (`store.identity.key_holder`, run by every
authenticated request): its p50 over 1,800 checks of one user's key, on SQLite and on
the PostgreSQL database named (a scratch one: it is migrated and a user is added).

    createdb keycheck && python bench/key_check.py postgresql+psycopg://postgres@127.0.0.1:5432/keycheck

Run it from two checkouts (PYTHONPATH=<checkout>) in alternation to compare them.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from store.db import make_engine, make_session_factory, migrate
from store.identity import create_user, key_holder

CHECKS, WARMUP = 2000, 200


def p50_microseconds(url: str) -> float:
    migrate(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        _, issued = create_user(session, f"bench{uuid.uuid4().hex[:8]}")
    timings = []
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        for _ in range(CHECKS):
            started = time.perf_counter()
            assert key_holder(connection, issued.key) is not None
            timings.append(time.perf_counter() - started)
    engine.dispose()
    return 1e6 * statistics.median(timings[WARMUP:])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        urls = [f"sqlite:///{Path(folder) / 'keys.db'}", *sys.argv[1:2]]
        for url in urls:
            print(f"{url.split(':')[0]}: key check p50 {p50_microseconds(url):.0f} µs")


if __name__ == "__main__":
    main()

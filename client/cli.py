"""The server's `memlab` commands (serve, worker, reaper, migrate), added to the client's
app (`memlab_client.cli.app`), so `memlab` in a server install does both.

Importing this module registers them; the `memlab` script finds it through the
`memlab.commands` entry point, and `python -m client.cli …` runs the whole app. Server code
is imported inside each command, so the client commands stay light.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from memlab_client.cli import app

console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder for all embedded state (default ~/.memlab).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Runs executed in parallel.")] = 1,
) -> None:
    """Run the API and a worker here (SQLite and a file broker unless MEMLAB_* say otherwise)."""
    if data_dir is not None:
        os.environ["MEMLAB_DATA_DIR"] = str(data_dir.expanduser().resolve())
    # The app decides from it whether requests need API keys (off on loopback by default).
    os.environ["MEMLAB_BIND_HOST"] = host
    import uvicorn

    from store.db import migrate
    from store.settings import Settings
    from worker.launch import celery_worker_command

    settings = Settings()
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    console.print(
        f"memlab: data in {settings.data_dir}, database {settings.resolved_database_url}, "
        f"broker {settings.resolved_broker_url}"
    )
    worker = subprocess.Popen(
        celery_worker_command("cpu,gpu", concurrency, "embedded"),
        preexec_fn=_die_with_parent,
        start_new_session=True,  # its own process group, so its pool can be stopped whole
    )
    # uvicorn re-raises the SIGTERM it caught once it has shut down; under the default
    # handler that would end this process before `finally`, leaving the worker running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        _stop_worker(worker, settings.worker_stop_grace_s)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop_worker(worker: subprocess.Popen[bytes], grace_s: float) -> None:
    """Ask the worker to stop (Celery's warm shutdown), then kill its whole process group,
    pool processes included, once `grace_s` has passed. A run cut short is requeued by
    the reaper on the next start and resumes from its last checkpoint."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):  # none left: the warm shutdown was whole
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: cpu, gpu.")] = "cpu,gpu",
    concurrency: Annotated[int, typer.Option(help="Worker processes (one per GPU).")] = 1,
    name: Annotated[str, typer.Option(help="Worker node name prefix.")] = "memlab",
    devices: Annotated[
        str | None,
        typer.Option(
            help="Declare the devices this node offers, NAME:GiB comma-separated (e.g. "
            "H100:80,H100:80), instead of asking nvidia-smi: for tests without a GPU."
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="One single-process node per GPU, e.g. 0,1: each sees only its GPU "
            "(CUDA_VISIBLE_DEVICES) and is named NAME-gpuI; SIGTERM drains them all."
        ),
    ] = None,
    drain: Annotated[
        str | None,
        typer.Option(
            help="Start no worker: ask the running node NAME (as `memlab workers` shows it) "
            "to finish its runs, take no new one and exit, for maintenance.",
            metavar="NAME",
        ),
    ] = None,
) -> None:
    """Run a Celery worker against MEMLAB_DATABASE_URL and MEMLAB_BROKER_URL; it
    registers itself (`memlab workers`, GET /v1/workers) with its queues and devices.
    SIGTERM drains it too: the running run finishes, nothing new starts."""
    if drain is not None:
        _drain_worker(drain)
        return
    if devices is not None and gpus is None:
        from worker.registry import DEVICES_ENV, declared_devices

        try:
            declared_devices(devices)
        except ValueError as error:
            console.print(f"[red]error:[/red] --devices: {error}")
            raise typer.Exit(2) from None
        os.environ[DEVICES_ENV] = devices
    if gpus is not None:
        _worker_per_gpu(gpus, queues, name, devices)
        return
    from worker.launch import celery_worker_command

    os.execv(sys.executable, celery_worker_command(queues, concurrency, name))


def _worker_per_gpu(gpus: str, queues: str, name: str, devices: str | None) -> None:
    from worker.launch import parse_gpus, per_gpu_nodes, supervise

    try:
        nodes = per_gpu_nodes(parse_gpus(gpus), queues, name, devices)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    raise typer.Exit(supervise(nodes))


def _drain_worker(name: str) -> None:
    """Mark the node to drain in the database; it acts at its next heartbeat."""
    from store import audit, workers
    from store.audit import AuditAction
    from store.db import make_engine, make_session_factory
    from store.identity import operator_name
    from store.settings import Settings

    settings = Settings()
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        if workers.request_drain(session, name) is None:
            console.print(f"[red]error:[/red] no worker named {name!r} (see `memlab workers`)")
            raise typer.Exit(1)
        audit.record(session, None, operator_name(), AuditAction.worker_drained, target=name)
    console.print(
        f"asked {name} to drain: within "
        f"{settings.heartbeat_interval_s:g} s it takes no new run; it exits once its runs end"
    )


def _die_with_parent() -> None:
    """In the worker child (Linux): get SIGTERM when `memlab serve` dies, even by SIGKILL,
    so no orphaned worker keeps consuming the embedded queue."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@app.command()
def reaper() -> None:
    """Run the reaper and the dispatcher without an API (each API process runs them too):
    requeue lost runs; hand queued runs to free worker slots (one dispatcher at a time
    across processes)."""
    from store.db import make_engine, make_session_factory
    from store.settings import Settings
    from worker.celery_config import create_celery
    from worker.dispatch import CeleryDispatcher
    from worker.fair_dispatch import DispatcherThread
    from worker.reaper import ReaperThread

    settings = Settings()
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    broker = CeleryDispatcher(create_celery(settings))
    threads: list[ReaperThread | DispatcherThread] = [
        ReaperThread(sessions, settings),
        DispatcherThread(sessions, broker, settings),
    ]
    console.print(
        f"reaping every {settings.reaper_interval_s}s, dispatching every "
        f"{settings.dispatch_interval_s}s"
    )
    for thread in threads:
        thread.start()
    try:
        while all(thread.is_alive() for thread in threads):
            threads[0].join(timeout=1.0)
    except KeyboardInterrupt:
        for thread in threads:
            thread.stop()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (MEMLAB_DATABASE_URL)."""
    from store.db import migrate as run_migrations
    from store.settings import Settings

    settings = Settings()
    settings.ensure_dirs()
    run_migrations(settings.resolved_database_url)
    console.print(f"database at {settings.resolved_database_url} is up to date")


users_app = typer.Typer(help="Users and their API keys (run on the server machine).")
app.add_typer(users_app, name="users")


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(help="A unique name: the user and its personal project.")],
    admin: Annotated[bool, typer.Option(help="May manage users and read the audit log.")] = False,
) -> None:
    """Create a user with a personal project and print its first API key, once."""
    from store.db import make_engine, make_session_factory, migrate
    from store.identity import IdentityError, create_user, record_user_created
    from store.settings import Settings

    settings = Settings()
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    try:
        with sessions.begin() as session:
            user, issued = create_user(session, name, admin=admin)
            user_id = user.id
            record_user_created(session, user, issued.prefix)
    except IdentityError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    role = "admin" if admin else "user"
    console.print(f"created {role} [bold]{name}[/bold] ({user_id}) with a personal project")
    console.print("API key (shown once; keep it in MEMLAB_API_KEY):")
    print(issued.key)


if __name__ == "__main__":
    app()

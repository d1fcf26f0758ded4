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

    settings = Settings()
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    console.print(
        f"memlab: data in {settings.data_dir}, database {settings.resolved_database_url}, "
        f"broker {settings.resolved_broker_url}"
    )
    worker = subprocess.Popen(
        _worker_command("cpu,gpu", concurrency, "embedded"),
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
) -> None:
    """Run a Celery worker against MEMLAB_DATABASE_URL and MEMLAB_BROKER_URL."""
    os.execv(sys.executable, _worker_command(queues, concurrency, name))


def _die_with_parent() -> None:
    """In the worker child (Linux): get SIGTERM when `memlab serve` dies, even by SIGKILL,
    so no orphaned worker keeps consuming the embedded queue."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _worker_command(queues: str, concurrency: int, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app:app",
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


@app.command()
def reaper() -> None:
    """Run only the reaper (the API runs one too): requeue lost runs, publish unsent ones."""
    from store.db import make_engine, make_session_factory
    from store.settings import Settings
    from worker.celery_config import create_celery
    from worker.dispatch import CeleryDispatcher
    from worker.reaper import ReaperThread

    settings = Settings()
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    thread = ReaperThread(sessions, CeleryDispatcher(create_celery(settings)), settings)
    console.print(f"reaping every {settings.reaper_interval_s}s; Ctrl-C to stop")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(timeout=1.0)
    except KeyboardInterrupt:
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

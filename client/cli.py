"""The `memlab` command line: serve, worker, migrate, submit, kinds, ls, show, cancel,
probe, probes.

Server-side commands (serve, worker, migrate) import server code lazily, so the client
commands stay light.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from client.sdk import MemlabClient, MemlabError

app = typer.Typer(help="memlab: a lab server for memorization research.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="MEMLAB_URL", help="Base URL of the memlab API.")
]


@contextmanager
def _client(url: str) -> Iterator[MemlabClient]:
    """A client whose errors become short messages and a non-zero exit."""
    client = MemlabClient(url)
    try:
        yield client
    except MemlabError as error:
        err_console.print(f"[red]error:[/red] {error}")
        for detail in error.details:
            err_console.print(f"  {detail.get('path') or '(body)'}: {detail.get('message')}")
        raise typer.Exit(1) from error
    except httpx.TransportError as error:
        err_console.print(
            f"[red]error:[/red] cannot reach memlab at {url} ({error}). "
            "Is `memlab serve` running? Set --url or MEMLAB_URL to point elsewhere."
        )
        raise typer.Exit(2) from error
    finally:
        client.close()


# ---------------------------------------------------------------- server-side commands


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
        _worker_command("cpu,gpu", concurrency, "embedded"), preexec_fn=_die_with_parent
    )
    try:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


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


# ---------------------------------------------------------------- client commands


def _set_path(spec: dict[str, Any], dotted: str, raw_value: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as JSON when it can be."""
    try:
        value: Any = json.loads(raw_value)
    except json.JSONDecodeError:
        value = raw_value
    *parents, leaf = dotted.split(".")
    node = spec
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise typer.BadParameter(f"--set {dotted}: {key!r} is not an object in the spec")
        node = child
    node[leaf] = value


def _load_request(
    file: str | None, kind: str | None, overrides: list[str], file_fields: list[str] | None = None
) -> dict[str, Any]:
    """Build a POST body from a JSON file (a spec or a whole request), --kind, --set and
    --set-file (a field set to a file's text, e.g. an uploaded triplet file)."""
    body: dict[str, Any] = {}
    if file is not None:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"{file} is not valid JSON: {error}") from error
        if not isinstance(loaded, dict):
            raise typer.BadParameter(f"{file} must hold a JSON object")
        body = loaded if "spec" in loaded else {"spec": loaded}
    body.setdefault("spec", {})
    if kind is not None:
        body["spec"]["kind"] = kind
    if "kind" not in body["spec"]:
        raise typer.BadParameter("give a spec FILE or --kind (see `memlab kinds`)")
    for assignment in overrides:
        if "=" not in assignment:
            raise typer.BadParameter(f"--set expects key=value, got {assignment!r}")
        key, value = assignment.split("=", 1)
        _set_path(body["spec"], key, value)
    for assignment in file_fields or []:
        key, _, path = assignment.partition("=")
        if not path:
            raise typer.BadParameter(f"--set-file expects key=PATH, got {assignment!r}")
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise typer.BadParameter(f"--set-file {key}: cannot read {path}: {error}") from error
        _set_path(body["spec"], key, json.dumps(text))
    return body


@app.command()
def submit(
    file: Annotated[str | None, typer.Argument(help="JSON spec file, or - for stdin.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Experiment kind.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a spec field: a.b=value.")
    ] = None,
    set_file: Annotated[
        list[str] | None,
        typer.Option(
            "--set-file", help="Set a spec field to a file's text: a.b=PATH (e.g. an upload)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the experiment.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the run ends.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Submit an experiment; with --wait, show a progress bar and the result."""
    body = _load_request(file, kind, set_ or [], set_file)
    if name is not None:
        body["name"] = name
    if tag:
        body["tags"] = [*body.get("tags", []), *tag]
    with _client(url) as client:
        experiment = client.submit(body["spec"], name=body.get("name"), tags=body.get("tags"))
        console.print(f"submitted [bold]{experiment['id']}[/bold] ({experiment['kind']})")
        if not wait:
            return
        final = _follow(client, experiment["id"])
    _print_experiment(final)
    if final["status"] != "succeeded":
        raise typer.Exit(1)


def _follow(client: MemlabClient, experiment_id: str, probe: bool = False) -> dict[str, Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("queued", total=1.0)

        def update(_: str, data: dict[str, Any]) -> None:
            label = data["status"] + (f" · {data['message']}" if data.get("message") else "")
            bar.update(task, completed=data.get("progress", 0.0), description=label)

        if probe:
            return client.wait_probe(experiment_id, on_event=update)
        return client.wait(experiment_id, on_event=update)


@app.command()
def kinds(url: UrlOption = "http://127.0.0.1:8000") -> None:
    """List the experiment kinds the server runs."""
    with _client(url) as client:
        table = Table("kind", "description")
        for kind in client.kinds():
            table.add_row(kind["name"], kind["description"])
    console.print(table)


@app.command("ls")
def list_experiments(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, cancelled.")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only experiments with this tag.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 20,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """List experiments, newest first."""
    with _client(url) as client:
        page = client.list(kind=kind, status=status, tag=tag, limit=limit)
    if not console.is_terminal:  # piped into a script: one tab-separated line per run
        for e in page["items"]:
            fields = (
                e["id"],
                e["kind"],
                e["name"] or "",
                e["status"],
                f"{e['progress']:.3f}",
                e["created_at"],
                ",".join(e["tags"]),
            )
            console.print("\t".join(fields), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # whole, so it can be copied
    for column in ("kind", "name", "status", "progress", "created", "tags"):
        table.add_column(column)
    for e in page["items"]:
        table.add_row(
            e["id"],
            e["kind"],
            e["name"] or "",
            e["status"],
            f"{e['progress']:.0%}",
            e["created_at"][:19],
            ",".join(e["tags"]),
        )
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")


@app.command()
def show(experiment_id: str, url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Show one experiment: status, progress and result."""
    with _client(url) as client:
        experiment = client.get(experiment_id)
    _print_experiment(experiment)


@app.command()
def cancel(experiment_id: str, url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Cancel a queued or running experiment."""
    with _client(url) as client:
        experiment = client.cancel(experiment_id)
    console.print(f"{experiment_id}: {experiment['status']} (cancel requested)")


@app.command()
def probe(
    experiment_id: Annotated[str, typer.Argument(help="The succeeded experiment to probe.")],
    kind: Annotated[str, typer.Argument(help="Probe kind (see `memlab probe-kinds`).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A probe parameter: key=value.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the probe.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the probe ends.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Probe what a finished experiment memorized, e.g. `memlab probe ID loss_mia --wait`."""
    spec: dict[str, Any] = {"kind": kind}
    for assignment in param or []:
        if "=" not in assignment:
            raise typer.BadParameter(f"--param expects key=value, got {assignment!r}")
        key, value = assignment.split("=", 1)
        _set_path(spec, key, value)
    with _client(url) as client:
        submitted = client.probe(experiment_id, spec, name=name)
        console.print(f"submitted probe [bold]{submitted['id']}[/bold] ({kind} of {experiment_id})")
        if not wait:
            return
        final = _follow(client, submitted["id"], probe=True)
    _print_experiment(final, title="probe")
    if final["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def probes(
    experiment_id: Annotated[str | None, typer.Argument(help="Only probes of this one.")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """List probes, newest first (tab-separated when piped)."""
    with _client(url) as client:
        found = client.list_probes(experiment_id, limit=200)["items"]
    rows = [
        (p["id"], p["experiment_id"], p["kind"], p["status"], _headline(p.get("result")))
        for p in found
    ]
    if not sys.stdout.isatty():
        for row in rows:
            print("\t".join(row))
        return
    table = Table("id", "experiment", "kind", "status", "headline")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command("probe-kinds")
def probe_kinds(url: UrlOption = "http://127.0.0.1:8000") -> None:
    """The probe kinds this server runs, and what each needs of an experiment."""
    with _client(url) as client:
        found = client.probe_kinds()
    table = Table("kind", "needs", "description")
    for probe_kind in found:
        table.add_row(
            probe_kind["name"], ", ".join(probe_kind["needs"]) or "-", probe_kind["description"]
        )
    console.print(table)


def _headline(result: dict[str, Any] | None) -> str:
    """The one number to glance at in a probe's result."""
    if not result:
        return ""
    if "attack" in result:
        return f"AUC {result['attack']['auc']:.3f}"
    for key in ("accuracy", "bits_per_parameter", "fraction_memorized"):
        if isinstance(result.get(key), float):
            return f"{key} {result[key]:.4g}"
    if "by_insertions" in result:
        return " ".join(
            f"r={row['insertions']}:{row['mean_exposure']:.1f}b" for row in result["by_insertions"]
        )
    return ""


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


_LONG_FIELDS = ("roc", "items", "canaries", "k_sweep", "match_histogram")


def _print_experiment(experiment: dict[str, Any], title: str = "experiment") -> None:
    table = Table("field", "value", title=f"{title} {experiment['id']}")
    for field in ("kind", "name", "status", "progress", "attempts", "created_at", "finished_at"):
        table.add_row(field, str(experiment.get(field)))
    for key, value in _flatten(experiment.get("result") or {}, "result"):
        if key.startswith("result.training.") and key != "result.training.wall_seconds":
            continue
        if any(f".{field}" in key for field in _LONG_FIELDS):
            continue  # curves and per-item lists: see the JSON (`memlab show` / the API)
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    if experiment.get("error"):
        err_console.print(f"[red]error:[/red]\n{experiment['error']}")


if __name__ == "__main__":
    app()

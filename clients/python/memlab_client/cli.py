"""The `memlab` command line, as a client of a memlab server: submit, kinds, ls, show,
cancel, probe, probes, probe-kinds, sweep, sweeps, sweep-show, sweep-cancel, table,
reproduce, report, and from access_cli.py whoami, workers, keys, projects, audit.

The server package adds its own commands (serve, worker, reaper, migrate) to this app
through the `memlab.commands` entry point group, which `main` loads.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, cast

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from memlab_client import access_cli
from memlab_client import reproduce as reproduce_files
from memlab_client.report import markdown_report, only, varying_keys
from memlab_client.sdk import TERMINAL, MemlabClient, MemlabError

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

app = typer.Typer(help="memlab: a lab server for memorization research.", no_args_is_help=True)
console = Console()
# Errors are never hard-wrapped: a script (or a person) greps them whole.
err_console = Console(stderr=True, soft_wrap=True)

AUTO_PROBE_TAG = "auto-probe"  # what the worker tags the probes an experiment spec lists

UrlOption = Annotated[
    str, typer.Option("--url", envvar="MEMLAB_URL", help="Base URL of the memlab API.")
]


def _connect(url: str) -> MemlabClient:
    """The client every command uses (tests point it at an in-process app)."""
    return MemlabClient(url)


@contextmanager
def _client(url: str) -> Iterator[MemlabClient]:
    """A client whose errors become short messages and a non-zero exit."""
    client = _connect(url)
    try:
        yield client
    except MemlabError as error:
        _print_api_error(error)
        raise typer.Exit(1) from error
    except httpx.TransportError as error:
        err_console.print(
            f"[red]error:[/red] cannot reach memlab at {escape(url)} ({escape(str(error))}). "
            "Is `memlab serve` running? Set --url or MEMLAB_URL to point elsewhere."
        )
        raise typer.Exit(2) from error
    finally:
        client.close()


def _print_api_error(error: MemlabError) -> None:
    """The error once: its status, code and message, then each field at fault.

    The server's message already ends with a summary of the details ("invalid request:
    spec.train.lr: …"), so beside the details only its headline is printed.
    """
    err_console.print(
        f"[red]error:[/red] HTTP {error.status} {escape(error.code)}: {escape(error.headline)}"
    )
    for detail in error.details:
        path = detail.get("path") or "body"
        err_console.print(f"  {escape(path)}: {escape(str(detail.get('message', '')))}")


def _set_path(spec: dict[str, Any], dotted: str, raw_value: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as JSON when it can be.

    NaN and Infinity are not JSON (Python's parser accepts them, and the request could
    then not be sent): they stay strings, for the server to judge and name the field."""
    try:
        value: Any = json.loads(raw_value, parse_constant=_refuse_non_json_constant)
    except (json.JSONDecodeError, ValueError):
        value = raw_value
    *parents, leaf = dotted.split(".")
    node = spec
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise typer.BadParameter(f"--set {dotted}: {key!r} is not an object in the spec")
        node = child
    node[leaf] = value


def _refuse_non_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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
    priority: Annotated[
        int | None,
        typer.Option(help="-10 to 10: higher goes first; above 0 only an admin may give."),
    ] = None,
    gpus: Annotated[
        int | None, typer.Option(help="GPUs it needs: only a node that has them takes it.")
    ] = None,
    gpu_memory: Annotated[
        float | None, typer.Option(help="GiB each of those GPUs has, at least.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the run ends.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Submit an experiment; with --wait, show a progress bar and the result."""
    body = _load_request(file, kind, set_ or [], set_file)
    if name is not None:
        body["name"] = name
    if tag:
        body["tags"] = [*body.get("tags", []), *tag]
    if priority is not None:
        body["priority"] = priority
    if gpus is not None or gpu_memory is not None:
        asked = {"gpus": gpus if gpus is not None else 1, "gpu_memory_gib": gpu_memory or 0.0}
        body["resources"] = {**body.get("resources", {}), **asked}
    with _client(url) as client:
        experiment = client.submit(
            body["spec"],
            name=body.get("name"),
            tags=body.get("tags"),
            priority=body.get("priority", 0),
            resources=body.get("resources"),
        )
        console.print(f"submitted [bold]{experiment['id']}[/bold] ({experiment['kind']})")
        if not wait:
            return
        final = _follow(client, experiment["id"])
        _print_experiment(final)
        probes_run = _follow_auto_probes(client, final) if final["status"] == "succeeded" else []
    if final["status"] != "succeeded" or any(p["status"] != "succeeded" for p in probes_run):
        raise typer.Exit(1)


def _follow_auto_probes(client: MemlabClient, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """Follow the probes the experiment's spec lists to their end, and show their results.

    The worker adds them in the same transaction that marks the experiment succeeded, so
    they are all listed by then; it runs them one after another, oldest first."""
    asked = len(experiment["spec"].get("probes") or [])
    if not asked:
        return []
    listed = client.list_probes(experiment["id"], tag=AUTO_PROBE_TAG, limit=200)["items"]
    finished = [
        p if p["status"] in TERMINAL else _follow(client, p["id"], probe=True, label=p["kind"])
        for p in reversed(listed)
    ]
    if len(finished) != asked:
        err_console.print(
            f"[yellow]warning:[/yellow] the spec lists {asked} probes; the server has "
            f"{len(finished)} for {experiment['id']}"
        )
    _print_probe_results(finished, title=f"probes of {experiment['id']}")
    return finished


def _print_probe_results(found: list[dict[str, Any]], title: str) -> None:
    table = Table("probe", "kind", "status", "headline", title=title)
    for probe_run in found:
        cells = (probe_run["id"], probe_run["kind"], probe_run["status"])
        table.add_row(*(escape(cell) for cell in (*cells, _headline(probe_run["result"]))))
    console.print(table)
    for probe_run in found:
        if probe_run.get("error"):
            err_console.print(
                f"[red]probe {probe_run['id']} ({escape(probe_run['kind'])}) failed:[/red]\n"
                f"{escape(probe_run['error'])}"
            )


def _progress_bar() -> Progress:
    """What following a run or a sweep shows: its description, a bar, % and time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
    )


def _follow(
    client: MemlabClient, experiment_id: str, probe: bool = False, label: str = ""
) -> dict[str, Any]:
    prefix = f"{label} · " if label else ""
    with _progress_bar() as bar:
        task = bar.add_task(f"{prefix}queued", total=1.0)

        def update(_: str, data: dict[str, Any]) -> None:
            message = f" · {data['message']}" if data.get("message") else ""
            description = escape(f"{prefix}{data['status']}{message}")
            bar.update(task, completed=data.get("progress", 0.0), description=description)

        if probe:
            return client.wait_probe(experiment_id, on_event=update)
        return client.wait(experiment_id, on_event=update)


@app.command()
def kinds(
    name: Annotated[
        str | None, typer.Argument(help="Show this kind's fields and its default spec.")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """List the experiment kinds the server runs, or show one: `memlab kinds NAME`."""
    with _client(url) as client:
        found = client.kinds()
    if name is None:
        table = Table("kind", "description")
        for kind in found:
            table.add_row(kind["name"], kind["description"])
        console.print(table)
        return
    by_name = {kind["name"]: kind for kind in found}
    if name not in by_name:
        err_console.print(
            f"[red]error:[/red] unknown kind {escape(repr(name))}; "
            f"known kinds: {escape(', '.join(by_name))}"
        )
        raise typer.Exit(1)
    _print_kind(by_name[name])


def _print_kind(kind: dict[str, Any]) -> None:
    """A kind's fields (the names `--set` takes) and its default spec."""
    console.print(f"[bold]{escape(kind['name'])}[/bold]: {escape(kind['description'])}")
    table = Table("field", "type", "default", "description", title=f"fields of {kind['name']}")
    for field in schema_fields(kind["json_schema"], kind["default_spec"]):
        table.add_row(*(escape(column) for column in field))
    console.print(table)
    console.print(f"default spec (`memlab submit --kind {escape(kind['name'])}` sends this):")
    console.print_json(json.dumps(kind["default_spec"]))


def schema_fields(
    schema: dict[str, Any], defaults: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(dotted name, type, default, description) for each field of a JSON schema, nested
    models included (`train.steps`); defaults come from `defaults` (the kind's default
    spec) where it has the field, since a kind's nested defaults differ from the model's."""
    definitions = schema.get("$defs", {})
    rows: list[tuple[str, str, str, str]] = []

    def visit(node: dict[str, Any], prefix: str, default: Any) -> None:
        for key, field in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            value = default.get(key, field.get("default")) if isinstance(default, dict) else None
            nested = _nested_model(field, definitions)
            description = field.get("description") or (nested or {}).get("description", "")
            shown = "" if nested is not None and isinstance(value, dict) else _compact(value)
            if "default" not in field and not (isinstance(default, dict) and key in default):
                shown = "(required)"
            rows.append((path, _type_name(field, definitions), shown, description))
            if nested is not None:
                visit(nested, f"{path}.", value if isinstance(value, dict) else {})

    visit(schema, "", defaults)
    return rows


def _nested_model(field: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any] | None:
    """The model a field holds (`$ref`, or `$ref` or null), to list its fields under it."""
    options = field.get("anyOf", [field])
    refs = [option["$ref"] for option in options if "$ref" in option]
    others = [option for option in options if "$ref" not in option]
    if len(refs) != 1 or any(option.get("type") != "null" for option in others):
        return None
    model: dict[str, Any] | None = definitions.get(refs[0].rsplit("/", 1)[-1])
    return model if model and "properties" in model else None


def _type_name(field: dict[str, Any], definitions: dict[str, Any]) -> str:
    """A short type: `integer [1, 10000000]`, `arithmetic | facts`, `TrainSpec`, `list[string]`."""
    if "$ref" in field:
        name = field["$ref"].rsplit("/", 1)[-1]
        return str(definitions.get(name, {}).get("title", name))
    if "const" in field:
        return json.dumps(field["const"])
    if "enum" in field:
        return " | ".join(str(value) for value in field["enum"])
    for union in ("anyOf", "oneOf"):
        if union in field:
            return " | ".join(_type_name(option, definitions) for option in field[union])
    kind = field.get("type", "any")
    if kind == "array":
        return f"list[{_type_name(field.get('items', {}), definitions)}]"
    return f"{kind}{_bounds(field)}"


def _bounds(field: dict[str, Any]) -> str:
    """` [1, 10]`, ` (0, 1]`, ` [0, …)`, or nothing for a field with no bounds."""
    low, high = field.get("minimum"), field.get("maximum")
    low_open, high_open = field.get("exclusiveMinimum"), field.get("exclusiveMaximum")
    if low is None and high is None and low_open is None and high_open is None:
        return ""
    left = f"({low_open}" if low_open is not None else f"[{low}" if low is not None else "(…"
    right = f"{high_open})" if high_open is not None else f"{high}]" if high is not None else "…)"
    return f" {left}, {right}"


def _compact(value: Any, width: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("ls")
def list_experiments(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, cancelled.")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only experiments with this tag.")] = None,
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="Only the experiments of this sweep.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="A filter, e.g. 'spec.model.n_embd in (14, 28) and result.final.facts >= 0.9' "
            "(docs/api.md, Filtering)."
        ),
    ] = None,
    sort: Annotated[
        str | None, typer.Option(help="A field to sort by, '-' first for descending.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 20,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """List experiments, newest first (or as --sort says), filtered in the database."""
    with _client(url) as client:
        page = client.list(
            sweep_id=sweep,
            kind=kind,
            status=status,
            tag=tag,
            where=where,
            sort=sort,
            limit=limit,
        )
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
            print("\t".join(fields))  # not console.print, which expands tabs to spaces
        return
    rows = [
        {
            "id": e["id"],
            "name": e["name"] or "",
            "kind": e["kind"],
            "status": e["status"],
            "progress": f"{e['progress']:.0%}",
            "created": e["created_at"][:16].replace("T", " "),
            "tags": ",".join(e["tags"]),
        }
        for e in page["items"]
    ]
    columns = fit_columns(rows, console.width)
    table = Table()
    for column in columns:
        # The id whole, so it can be copied; the name wraps rather than vanish.
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[column]) for column in columns))
    console.print(table)
    hidden = [column for column in LS_COLUMNS if column not in columns]
    note = f" ({', '.join(hidden)} hidden to fit the terminal)" if hidden else ""
    console.print(f"{len(page['items'])} of {page['total']}{note}")


LS_COLUMNS = ("id", "name", "kind", "status", "progress", "created", "tags")
_DROPPED_FIRST = ("tags", "created", "progress", "kind")  # id, name and status always stay


def fit_columns(rows: list[dict[str, str]], width: int) -> list[str]:
    """The `ls` columns that fit `width`, dropping the least needed first: rich would
    otherwise squeeze every column, the name down to an ellipsis."""
    columns = list(LS_COLUMNS)

    def needed(shown: list[str]) -> int:
        cells = sum(max([len(c), *(len(row[c]) for row in rows)]) for c in shown)
        return cells + 3 * len(shown) + 1  # padding and a rule around each cell

    for column in _DROPPED_FIRST:
        if needed(columns) <= width:
            break
        columns.remove(column)
    return columns


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
        if submitted.get("shadow_sweep_id"):
            console.print(
                f"it runs once its shadow models have trained: sweep "
                f"[bold]{submitted['shadow_sweep_id']}[/bold] (`memlab sweep-show ID`)"
            )
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
        table.add_row(*(escape(cell) for cell in row))
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


# ---------------------------------------------------------------- sweeps

SWEEP_EXAMPLE = """\
{
  "base": {"kind": "capacity_tradeoff", "task": "facts",
           "train": {"steps": 2000}},
  "axes": {"model.n_embd": [14, 28, 56], "train.lr": [0.001, 0.003]},
  "seeds": 3,
  "method": "grid",
  "batch": true,
  "name": "facts: width by learning rate",
  "tags": ["sweep:capacity"]
}"""


def _load_sweep_request(file: str) -> dict[str, Any]:
    """A sweep request from a JSON file (`-`: stdin), or a message saying what is wrong."""
    source = "stdin" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as error:
        raise typer.BadParameter(f"cannot read {file}: {error.strerror or error}") from error
    try:
        request = json.loads(text, parse_constant=_refuse_non_json_constant)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{source} is not valid JSON: {error}") from error
    except ValueError as error:  # NaN or Infinity, which could not be sent
        raise typer.BadParameter(f"{source}: {error}") from error
    if not isinstance(request, dict):
        raise typer.BadParameter(f"{source} must hold a JSON object (a sweep request)")
    if "base" not in request:
        hint = " (it looks like one experiment's spec: `memlab submit` takes that)"
        raise typer.BadParameter(
            f"{source} has no `base`: a sweep request is a base spec, axes and seeds"
            f"{hint if 'kind' in request else ''}; see `memlab sweep --help`"
        )
    return cast(dict[str, Any], request)


@app.command(epilog=f"An example FILE (3 widths x 2 learning rates x 3 seeds):\n\n{SWEEP_EXAMPLE}")
def sweep(
    file: Annotated[str, typer.Argument(help="JSON sweep request file, or - for stdin.")],
    wait: Annotated[
        bool, typer.Option(help="Follow progress until every experiment has ended.")
    ] = False,
    reuse: Annotated[
        bool, typer.Option(help="Reuse a succeeded experiment with the same spec for a cell.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="A name for the sweep.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Submit a sweep: a base spec, axes and seeds, one experiment per cell and seed.

    An axis is a dotted spec field and a list of values. With "method": "random"
    and "samples": N the server draws N points instead, and an axis may then be
    a range, {"min": 1e-4, "max": 1e-2, "scale": "log"}.

    With --wait: live counts per status, then a table of the experiments, and
    exit code 1 unless every one succeeded.
    """
    request = _load_sweep_request(file)
    if name is not None:
        request["name"] = name
    if tag:
        request["tags"] = [*request.get("tags", []), *tag]
    with _client(url) as client:
        submitted = client.sweep(request, reuse=reuse)
        console.print(
            f"submitted sweep [bold]{submitted['id']}[/bold] ({escape(submitted['kind'])}: "
            f"{submitted['n_runs']} experiments in {submitted['n_groups']} groups)"
        )
        if not wait:
            return
        try:
            final = _follow_sweep(client, submitted)
        except KeyboardInterrupt:
            err_console.print(
                f"stopped following; sweep {submitted['id']} goes on "
                f"(`memlab sweep-show {submitted['id']}`, `memlab sweep-cancel {submitted['id']}`)"
            )
            raise typer.Exit(130) from None
        children = client.sweep_experiments(final["id"])
    _print_sweep_experiments(final, children)
    if final["status"] != "succeeded" or any(c["status"] != "succeeded" for c in children):
        raise typer.Exit(1)


def sweep_summary(data: dict[str, Any]) -> str:
    """`running · 4/18 ended · 2 queued · 2 running · 3 succeeded · 1 failed`."""
    counts: dict[str, int] = data.get("counts") or {}
    ended = sum(counts.get(status, 0) for status in TERMINAL)
    parts = [data["status"], f"{ended}/{data['n_runs']} ended"]
    parts += [f"{counts[status]} {status}" for status in RUN_STATUSES if counts.get(status)]
    return " · ".join(parts)


def _follow_sweep(client: MemlabClient, submitted: dict[str, Any]) -> dict[str, Any]:
    """Show the sweep's counts and progress until it ends (the SDK follows its events and
    polls if the stream drops); returns the final sweep."""
    with _progress_bar() as bar:
        task = bar.add_task(escape(sweep_summary(submitted)), total=1.0)

        def update(data: dict[str, Any]) -> None:
            bar.update(
                task, completed=data.get("progress", 0.0), description=escape(sweep_summary(data))
            )

        final = client.wait_sweep(submitted["id"], on_update=update)
        update(final)
        return final


def _print_sweep_experiments(sweep: dict[str, Any], children: list[dict[str, Any]]) -> None:
    """One row per experiment, in cell order: its coordinates, status and headline; then
    the last line of each failed one's error."""
    axes = _cell_names(sweep, children)
    table = Table("experiment", *axes, "status", "headline", title=f"sweep {sweep['id']}")
    ordered = sorted(children, key=lambda child: _cell_sort_key(child.get("sweep_cell"), axes))
    for child in ordered:
        cell = child.get("sweep_cell") or {}
        coordinates = [_cell_value(cell[axis]) if axis in cell else "" for axis in axes]
        row = (child["id"], *coordinates, child["status"], _experiment_headline(child["result"]))
        table.add_row(*(escape(column) for column in row))
    console.print(table)
    console.print(f"sweep {sweep['id']}: {escape(sweep_summary(sweep))}")
    for child in ordered:
        if child["status"] == "failed" and child.get("error"):
            lines = [line for line in child["error"].splitlines() if line.strip()]
            last = lines[-1] if lines else child["error"]
            err_console.print(f"[red]experiment {child['id']} failed:[/red] {escape(last)}")


def _cell_names(sweep: dict[str, Any], children: list[dict[str, Any]]) -> list[str]:
    """The sweep's axes in its order, then `seed`, then any other name a cell has."""
    names = [*(sweep.get("axes") or {}), "seed"]
    for child in children:
        names += [name for name in child.get("sweep_cell") or {} if name not in names]
    return names


def _cell_sort_key(cell: dict[str, Any] | None, names: list[str]) -> tuple[tuple[int, Any], ...]:
    """Numbers by value, anything else by its JSON; a missing coordinate last."""
    key: list[tuple[int, Any]] = []
    for name in names:
        value = (cell or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            key.append((0, float(value)))
        elif value is None:
            key.append((2, ""))
        else:
            key.append((1, json.dumps(value, sort_keys=True)))
    return tuple(key)


def _cell_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _experiment_headline(result: dict[str, Any] | None, at_most: int = 2) -> str:
    """One or two numbers of an experiment's result: its final evaluation's where it has
    one (`score` first), a theory kind's `headline`, else its accuracies, else its first
    top-level numbers."""
    if not result:
        return ""
    if isinstance(result.get("headline"), dict):
        return _top_level_numbers(result["headline"], at_most=at_most + 1)
    final = result.get("final")
    if isinstance(final, dict):
        ordered = {"score": final["score"]} if "score" in final else {}
        return _top_level_numbers({**ordered, **final}, at_most=at_most)
    accuracies = {key: value for key, value in result.items() if "accuracy" in key}
    return _top_level_numbers(accuracies, at_most) or _top_level_numbers(result, at_most)


@app.command()
def sweeps(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only sweeps with this tag.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 20,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """List sweeps, newest first (tab-separated when piped)."""
    with _client(url) as client:
        page = client.list_sweeps(kind=kind, tag=tag, limit=limit)
    rows = [
        (
            s["id"],
            s["name"] or "",
            s["kind"],
            s["method"],
            s["status"],
            f"{s['progress']:.0%}",
            str(s["n_runs"]),
            _counts_text(s["counts"]),
            s["created_at"][:16].replace("T", " "),
        )
        for s in page["items"]
    ]
    if not console.is_terminal:
        for row in rows:
            print("\t".join(row))
        return
    table = Table()
    for column in ("id", "name", "kind", "method", "status", "progress", "runs", "counts"):
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    table.add_column("created", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")


def _counts_text(counts: dict[str, int]) -> str:
    """`3 succeeded, 1 failed`: the statuses that have any experiments."""
    return ", ".join(f"{counts[status]} {status}" for status in RUN_STATUSES if counts.get(status))


@app.command("sweep-show")
def sweep_show(sweep_id: str, url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Show one sweep: its request, status and counts, and a table of its experiments."""
    with _client(url) as client:
        found = client.get_sweep(sweep_id)
        children = client.sweep_experiments(sweep_id)
    table = Table("field", "value", title=f"sweep {found['id']}")
    fields = ("name", "kind", "method", "status", "progress", "n_runs", "n_groups")
    for field in (*fields, "seeds", "samples", "sampler_seed", "batch"):
        table.add_row(field, escape(str(found.get(field))))
    table.add_row("counts", escape(_counts_text(found["counts"])))
    for axis, values in (found.get("axes") or {}).items():
        table.add_row(f"axes.{escape(axis)}", escape(json.dumps(values)))
    table.add_row("tags", escape(",".join(found.get("tags") or [])))
    for field in ("cancel_requested", "created_at", "finished_at"):
        table.add_row(field, escape(str(found.get(field))))
    console.print(table)
    _print_sweep_experiments(found, children)


@app.command("table")
def sweep_table(
    sweep_id: str,
    value: Annotated[
        list[str] | None,
        typer.Option(
            "--value",
            help="A result path to show (e.g. final.facts, probe.loss_mia.attack.auc); "
            "repeatable. Default: the final and probe values, at most 6.",
        ),
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Also write the whole table to this CSV file.")
    ] = None,
    parquet_file: Annotated[
        Path | None, typer.Option("--parquet", help="Also write it to this Parquet file.")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """A sweep's results per cell: mean ± half-width of the 95% Student-t interval over
    its succeeded seeds, and how many seeds ended how."""
    with _client(url) as client:
        found = client.sweep_table(sweep_id)
        for file, table_format in ((csv_file, "csv"), (parquet_file, "parquet")):
            if file is not None:
                file.write_bytes(client.sweep_table_file(sweep_id, table_format))
                console.print(f"wrote {escape(str(file))}")
    _print_table(sweep_id, found, value or _default_table_values(found["rows"]))
    _print_verdicts(found.get("claims", []))  # none from a server older than claims


def _print_table(sweep_id: str, found: dict[str, Any], paths: list[str]) -> None:
    table = Table(title=f"sweep {sweep_id}: mean ± 95% t-interval half-width (n)")
    for axis in found["axes"]:
        table.add_column(escape(axis), no_wrap=True)
    table.add_column("seeds", no_wrap=True)
    for path in paths:
        table.add_column(escape(path), no_wrap=True)
    varying = {
        axis: varying_keys([row["cell"].get(axis) for row in found["rows"]])
        for axis in found["axes"]
    }
    for row in found["rows"]:
        cells = [
            escape(_cell_value(only(row["cell"].get(axis), varying[axis])))
            for axis in found["axes"]
        ]
        cells.append(escape(_counts_text(row["counts"])))
        cells += [_summary_text(row["values"].get(path)) for path in paths]
        table.add_row(*cells)
    console.print(table)


VERDICT_STYLES = {"shown": "green", "reversed": "red", "not shown": "yellow"}


def _print_verdicts(verdicts: list[dict[str, Any]]) -> None:
    """The sweep's claims, each with its verdict and the interval it rests on."""
    if not verdicts:
        return
    table = Table("claim", "verdict", "evidence", title="claims, held against the seeds")
    for verdict in verdicts:
        style = VERDICT_STYLES.get(verdict["verdict"], "dim")
        table.add_row(
            escape(verdict["statement"]),
            f"[{style}]{escape(verdict['verdict'])}[/{style}]",
            escape(verdict["reason"]),
        )
    console.print(table)


def _default_table_values(rows: list[dict[str, Any]]) -> list[str]:
    return reproduce_files.default_values(sorted({path for row in rows for path in row["values"]}))


def _summary_text(summary: dict[str, Any] | None) -> str:
    """`0.515 ± 0.19 (3)`; the mean alone for one seed; empty for none."""
    if not summary:
        return ""
    if summary["ci95_high"] is None:
        return f"{summary['mean']:.4g} (1)"
    half = summary["ci95_high"] - summary["mean"]
    return f"{summary['mean']:.4g} ± {half:.2g} ({summary['n']})"


@app.command(
    epilog="Examples: `memlab reproduce capacity_tradeoff`, `memlab reproduce --all --quick`."
)
def reproduce(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Reproductions by name: examples/NAME.sweep.json."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every sweep file in --examples.")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="The reduced versions, NAME.quick.sweep.json.")
    ] = False,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="The GPU-sized versions, NAME.gpu.sweep.json.")
    ] = False,
    paper: Annotated[
        bool,
        typer.Option("--paper", help="The papers' own sizes, NAME.paper.sweep.json."),
    ] = False,
    examples: Annotated[
        Path, typer.Option(help="Folder of sweep files (a memlab checkout's examples/).")
    ] = Path("examples"),
    out: Annotated[
        Path, typer.Option(help="Folder for each table (NAME.csv) and its record (NAME.json).")
    ] = Path("docs/data"),
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Run reproductions through the server: submit each sweep file, follow it, print its
    table and its claims' verdicts, and write the table to OUT/NAME.csv.

    Starting the same command again follows the sweeps the first start made (the file's
    digest is the sweep's idempotency key), so a reproduction that outlives a session
    resumes: restart `memlab serve` on the same data folder, then run the command again.
    Cells whose spec already succeeded on this server are reused, not retrained.
    """
    chosen = [v for v, wanted in ((".quick", quick), (".gpu", gpu), (".paper", paper)) if wanted]
    if len(chosen) > 1:
        flags = " and ".join(f"-{v.replace('.', '-')}" for v in chosen)
        raise typer.BadParameter(f"{flags} name different files: give one")
    variant = chosen[0] if chosen else ""
    try:
        files = reproduce_files.find_sweep_files(
            examples, names or [], every=every, variant=variant
        )
    except reproduce_files.ReproduceError as error:
        raise typer.BadParameter(str(error)) from error
    folder = out / variant.lstrip(".") if variant else out
    records = []
    with _client(url) as client:
        started = [(file, _start_reproduction(client, file)) for file in files]
        for file, submitted in started:
            records.append(_finish_reproduction(client, file, submitted, folder))
    if len(records) > 1:
        console.print()
        for line in records:
            took = f" · {line['minutes']:.1f} min" if line["minutes"] is not None else ""
            reused = f" ({line['reused_children']} reused)" if line["reused_children"] else ""
            console.print(
                f"{escape(line['name'])}: effect {escape(line['effect'])} · {line['status']} "
                f"· {sum(line['counts'].values())} runs{reused}{took}"
            )
    if any(line["status"] != "succeeded" or line["failed_probes"] for line in records):
        raise typer.Exit(1)


def _start_reproduction(client: MemlabClient, file: reproduce_files.SweepFile) -> dict[str, Any]:
    """Submit the file (or find the sweep an earlier start of it made)."""
    sweep = client.sweep(file.request, reuse=True, idempotency_key=file.idempotency_key)
    ended = sum(sweep["counts"].get(status, 0) for status in TERMINAL)
    console.print(
        f"{escape(file.name)}: sweep [bold]{sweep['id']}[/bold], {sweep['n_runs']} experiments "
        f"in {sweep['n_groups']} groups, {ended} already ended"
    )
    return sweep


def _finish_reproduction(
    client: MemlabClient, file: reproduce_files.SweepFile, submitted: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Follow the sweep to its end, print its table and verdicts, write NAME.csv and NAME.json."""
    console.print(f"[bold]{escape(file.name)}[/bold] ({escape(str(file.path))})")
    try:
        final = _follow_sweep(client, submitted)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped following; sweep {submitted['id']} goes on. Run the same command again "
            "to follow it."
        )
        raise typer.Exit(130) from None
    children = client.sweep_experiments(final["id"])
    found = client.sweep_table(final["id"])
    _print_table(final["id"], found, reproduce_files.table_values(file.request, found["rows"]))
    _print_verdicts(found.get("claims", []))  # none from a server older than claims
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{file.name}.csv").write_bytes(client.sweep_table_file(final["id"], "csv"))
    line = reproduce_files.record(file, final, found, children)
    if line["failed_probes"]:  # the claims that read them say "no data"
        err_console.print(
            f"[red]{line['failed_probes']} probes of the sweep's experiments did not succeed"
            f"[/red] (`memlab probes EXPERIMENT` shows each one's error)"
        )
    (folder / f"{file.name}.json").write_text(json.dumps(line, indent=2) + "\n")
    console.print(
        f"{escape(file.name)}: effect {escape(line['effect'])}; "
        f"wrote {escape(str(folder / file.name))}.csv and .json"
    )
    return line


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="A reproduction: DATA/NAME.csv and NAME.json.")],
    value: Annotated[
        list[str] | None,
        typer.Option("--value", help="A result path to show (repeatable); default: the claims'."),
    ] = None,
    data: Annotated[Path, typer.Option(help="Where `memlab reproduce` wrote them.")] = Path(
        "docs/data"
    ),
    examples: Annotated[Path, typer.Option(help="Where its sweep file is.")] = Path("examples"),
    curve: Annotated[
        list[str] | None,
        typer.Option("--curve", help="A curve to show against its x with its theory (repeatable)."),
    ] = None,
    cell: Annotated[
        list[str] | None,
        typer.Option("--cell", help="Only cells where AXIS=VALUE (repeatable)."),
    ] = None,
    claims: Annotated[
        bool, typer.Option("--claims/--no-claims", help="End with the claims' verdicts.")
    ] = True,
) -> None:
    """Print a finished reproduction as Markdown (its table, its curves with their theory,
    then its claims' verdicts), from the files `memlab reproduce` wrote; no server needed."""
    try:
        chosen = dict(_assignment(text) for text in cell or [])
        print(
            markdown_report(
                data, name, value or None, examples, curves=curve, cells=chosen, claims=claims
            ),
            end="",
        )
    except reproduce_files.ReproduceError as error:
        raise typer.BadParameter(str(error)) from error


def _assignment(text: str) -> tuple[str, str]:
    """`AXIS=VALUE` as a pair; anything else is a usage error."""
    axis, equals, value = text.partition("=")
    if not equals or not axis:
        raise typer.BadParameter(f"--cell {text!r}: expected AXIS=VALUE, e.g. weights=random")
    return axis, value


@app.command("sweep-cancel")
def sweep_cancel(sweep_id: str, url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Cancel every queued or running experiment of a sweep."""
    with _client(url) as client:
        found = client.cancel_sweep(sweep_id)
    console.print(
        f"{sweep_id}: {found['status']} (cancel requested) · {_counts_text(found['counts'])}"
    )


def _headline(result: dict[str, Any] | None) -> str:
    """A probe's result in one line: a membership attack's AUC with its interval beside
    the blind baseline's, exposure by insertion count, or else its top-level numbers."""
    if not result:
        return ""
    if isinstance(result.get("attack"), dict):
        return _membership_headline(result["attack"], result.get("blind_baseline"))
    if "by_insertions" in result:
        return " ".join(
            f"r={row['insertions']}:{row['mean_exposure']:.1f}b" for row in result["by_insertions"]
        )
    return _top_level_numbers(result)


def _membership_headline(attack: dict[str, Any], blind: dict[str, Any] | None) -> str:
    line = f"AUC {_auc_with_interval(attack)}"
    if blind:
        line += f" · blind baseline {_auc_with_interval(blind)}"
    return line


def _auc_with_interval(metrics: dict[str, Any]) -> str:
    interval = metrics.get("auc_ci95")
    if not interval:
        return f"{metrics['auc']:.3f}"
    return f"{metrics['auc']:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _top_level_numbers(result: dict[str, Any], at_most: int = 6) -> str:
    """`accuracy 0.95 · n_items 200`: the result's own numbers, not those nested in it."""
    numbers = [
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in result.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return " · ".join(numbers[:at_most])


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


# Per-item lists (a counterfactual probe's `scores` and `top` hold one entry per item).
_LONG_FIELDS = ("roc", "items", "canaries", "k_sweep", "match_histogram", "scores", "top")


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


app.command("whoami")(access_cli.whoami)
app.command("workers")(access_cli.workers)
app.add_typer(access_cli.keys_app, name="keys")
app.add_typer(access_cli.projects_app, name="projects")
app.command("audit")(access_cli.audit)


def main() -> None:
    """The `memlab` script: this app, with the commands that installed packages add.

    Each entry point of the `memlab.commands` group names a module that registers its
    commands on `app` when imported (the server package's `client.cli` adds serve, worker,
    reaper and migrate), so one script serves both a client-only install and a server.
    """
    for entry in entry_points(group="memlab.commands"):
        entry.load()
    app()


if __name__ == "__main__":
    main()

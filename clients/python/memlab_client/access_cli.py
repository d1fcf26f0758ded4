"""`memlab whoami`, `memlab workers`, `memlab keys …`, `memlab projects …` and
`memlab audit`: who you are to the server, its worker nodes, your API keys, the projects
you share and their members, and (admins) the audit log. cli.py registers these commands
on the `memlab` app.

cli.py imports this module to register them, so this module cannot import from cli.py
while it loads: whichever is imported first would find the other half-built. Each
command looks up cli's error-handling client and its consoles when it runs instead,
through `_client`, `_out` and `_err`; tests swap those in cli.py, and the commands here
follow.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memlab_client.sdk import MemlabClient

# The same option as cli.py's UrlOption, which cannot be imported from there at load time.
UrlOption = Annotated[
    str, typer.Option("--url", envvar="MEMLAB_URL", help="Base URL of the memlab API.")
]
DEFAULT_URL = "http://127.0.0.1:8000"

# A key's public prefix, `mlk_` and 8 hex characters; a whole key starts with it and `_`.
KEY_PREFIX = re.compile(r"^(mlk_[0-9a-f]{8})(?:_.*)?$")

keys_app = typer.Typer(help="Your API keys: list, create, expire, revoke.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects you share, and their members.", no_args_is_help=True)


class Role(StrEnum):
    """A member's role in a project, each allowing all the one before does."""

    viewer = "viewer"
    member = "member"
    maintainer = "maintainer"


@contextmanager
def _client(url: str) -> Iterator[MemlabClient]:
    """cli.py's client: an API error becomes a short message and exit 1."""
    from memlab_client import cli  # at run time: cli.py imports this module

    with cli._client(url) as client:
        yield client


def _out() -> Console:
    from memlab_client import cli  # at run time: cli.py imports this module

    return cli.console


def _err() -> Console:
    from memlab_client import cli  # at run time: cli.py imports this module

    return cli.err_console


def _fail(message: str) -> typer.Exit:
    """Print `error: message` (markup escaped) and return the exit 1 to raise."""
    _err().print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _when(moment: str | None) -> str:
    """`2030-01-31 12:00:00` from the API's ISO text (UTC); `never` for none."""
    return moment[:19].replace("T", " ") if moment else "never"


# ------------------------------------------------------------------ whoami


def whoami(url: UrlOption = DEFAULT_URL) -> None:
    """Who the server takes you to be (the key in MEMLAB_API_KEY), and your projects."""
    with _client(url) as client:
        me = client.me()
    console = _out()
    if not me["authenticated"]:
        console.print("authentication is off: you are the local user")
    else:
        admin = "admin" if me["is_admin"] else "not an admin"
        console.print(f"[bold]{escape(me['name'])}[/bold] ({admin})")
    table = Table("project", "your role", "personal", title="your projects")
    for project in me["projects"]:
        personal = "yes" if project["personal"] else ""
        table.add_row(escape(project["name"]), project["role"] or "", personal)
    console.print(table)


def workers(
    stopped: Annotated[bool, typer.Option(help="Also nodes that have shut down.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """The worker nodes: queues, devices, busy slots, heartbeat, what each is running."""
    with _client(url) as client:
        found = client.workers(stopped=stopped)
    table = Table("worker", "state", "queues", "devices", "busy", "heartbeat", "running")
    for node in found:
        state = "stopped" if node["stopped_at"] else ("live" if node["live"] else "silent")
        devices = ", ".join(f"{d['name']} {d['memory_gib']:g} GiB" for d in node["devices"])
        running = ", ".join(
            f"{run['kind'] or run['run_type']} {str(run['id'] or 'other project')[:8]} "
            f"since {_when(run['started_at'])}"
            for run in node["running"]
        )
        table.add_row(
            escape(node["name"]),
            state,
            ",".join(node["queues"]),
            escape(devices) or "cpu only",
            f"{node['busy']}/{node['concurrency']}",
            _when(node["heartbeat_at"]),
            escape(running) or "idle",
        )
    _out().print(table if found else "no worker has registered (start one: memlab worker)")


# ------------------------------------------------------------------ keys


@keys_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option(help="Admins: another user's keys.")] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Your keys, newest first, revoked and expired ones too: prefixes, never the keys."""
    with _client(url) as client:
        found = client.keys(user=user)
    table = Table("prefix", "label", "status", "created", "expires", "id", title="API keys")
    for key in found:
        table.add_row(
            key["prefix"],
            escape(key["label"] or ""),
            _key_status(key),
            _when(key["created_at"]),
            _when(key["expires_at"]),
            key["id"],
        )
    _out().print(table)


def _key_status(key: dict[str, Any]) -> str:
    if key["revoked_at"]:
        return "revoked"
    return "active" if key["active"] else "expired"


@keys_app.command("create")
def create_key(
    label: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="It stops working this many days from now.")
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(help="It stops working then: ISO with a time zone, 2030-01-31T00:00Z."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Admins: the user the key is for.")] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """A new key, printed once on the last line: the server keeps only its digest."""
    if expires_in_days is not None and expires_at is not None:
        raise typer.BadParameter("give --expires-in-days or --expires-at, not both")
    expiry = _expiry(expires_in_days, expires_at, "--expires-at")
    with _client(url) as client:
        made = client.create_key(label=label, expires_at=expiry, user=user)
    console = _out()
    console.print(
        f"created key {made['prefix']} for {escape(made['user'])}, "
        f"expires {_when(made['expires_at'])}"
    )
    console.print("Keep it in MEMLAB_API_KEY: it is shown this once and cannot be shown again.")
    print(made["key"])  # plain print: never wrapped or styled, so it copies whole


def _expiry(in_days: int | None, at: str | None, at_flag: str) -> datetime | None:
    """The moment `--in-days N` or `--at ISO` names; None when neither is given."""
    if in_days is not None:
        return datetime.now(UTC) + timedelta(days=in_days)
    if at is None:
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError as error:
        raise typer.BadParameter(
            f"{at_flag} {at!r} is not an ISO date-time, e.g. 2030-01-31T00:00:00Z"
        ) from error
    if moment.tzinfo is None:
        raise typer.BadParameter(
            f"{at_flag} {at!r} has no time zone: add Z (UTC) or an offset such as +02:00"
        )
    return moment


@keys_app.command("expire")
def expire_key(
    key: Annotated[
        str, typer.Argument(metavar="KEY_ID", help="The key's id, or its prefix mlk_xxxxxxxx.")
    ],
    in_days: Annotated[
        int | None, typer.Option(min=1, help="It stops working this many days from now.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="It stops working then: ISO with a time zone.")
    ] = None,
    never: Annotated[bool, typer.Option("--never", help="It never expires.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Set when a key stops working: --in-days N, --at ISO, or --never (to stop it now,
    `memlab keys revoke`)."""
    if [in_days is not None, at is not None, never].count(True) != 1:
        raise typer.BadParameter("give exactly one of --in-days, --at and --never")
    expiry = _expiry(in_days, at, "--at")
    with _client(url) as client:
        changed = client.set_key_expiry(_key_id(client, key), expiry)
    _out().print(f"{changed['prefix']}: expires {_when(changed['expires_at'])}")


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[
        str, typer.Argument(metavar="KEY_ID", help="The key's id, or its prefix mlk_xxxxxxxx.")
    ],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Revoke a key: its next request is refused. Revoking it again changes nothing."""
    with _client(url) as client:
        revoked = client.revoke_key(_key_id(client, key))
    _out().print(f"{revoked['prefix']}: revoked at {_when(revoked['revoked_at'])}")


def _key_id(client: MemlabClient, given: str) -> str:
    """The id of the key `given` names: its id, or its prefix (or the key itself, of which
    only the prefix is used, so a pasted key is never echoed), looked up in your keys."""
    prefix = KEY_PREFIX.match(given)
    if prefix is None:
        if not _is_uuid(given):
            raise typer.BadParameter(
                f"{given!r} is neither a key's id nor its prefix mlk_xxxxxxxx "
                "(`memlab keys list` shows both)"
            )
        return given
    yours = client.keys()  # named first: ruff (SIM118) takes `in client.keys()` for a dict
    for key in yours:
        if key["prefix"] == prefix.group(1):
            return str(key["id"])
    raise _fail(
        f"none of your keys has the prefix {prefix.group(1)}; `memlab keys list` shows "
        "yours (an admin names another user's key by its id: `memlab keys list --user NAME`)"
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ projects


@projects_app.command("list")
def list_projects(url: UrlOption = DEFAULT_URL) -> None:
    """The projects you are in, with your role in each."""
    with _client(url) as client:
        found = client.projects()
    table = Table("project", "your role", "personal", "id", title="projects")
    for project in found:
        personal = "yes" if project["personal"] else ""
        table.add_row(escape(project["name"]), project["role"] or "", personal, project["id"])
    _out().print(table)


@projects_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Unique; letters, digits and _.-")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """A shared project, with you as its maintainer."""
    with _client(url) as client:
        made = client.create_project(name)
    _out().print(
        f"created project [bold]{escape(made['name'])}[/bold] ({made['id']}); "
        "you are its maintainer"
    )


@projects_app.command("show")
def show_project(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project's name or id.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """A project and its members with their roles."""
    with _client(url) as client:
        found = client.project(_project_id(client, project))
    console = _out()
    role = found["role"] or "none"
    console.print(
        f"[bold]{escape(found['name'])}[/bold] ({found['id']}), created "
        f"{_when(found['created_at'])}; your role: {role}"
    )
    table = Table("member", "role", title=f"members of {escape(found['name'])}")
    for member in found["members"]:
        table.add_row(escape(member["user"]), member["role"])
    console.print(table)


@projects_app.command("add")
def add_member(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project's name or id.")],
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's name.")],
    role: Annotated[Role, typer.Option(help="What the user may do there.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Add a user to a project in a role, or change its role (maintainers only)."""
    with _client(url) as client:
        project_id = _project_id(client, project)
        client.set_member(project_id, user, role.value)
    _out().print(f"{escape(user)} is a {role.value} of {escape(project)}")


@projects_app.command("remove")
def remove_member(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project's name or id.")],
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's name (yours, to leave).")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Take a user out of a project: maintainers remove anyone, anyone leaves."""
    with _client(url) as client:
        client.remove_member(_project_id(client, project), user)
    _out().print(f"{escape(user)} is no longer a member of {escape(project)}")


def _project_id(client: MemlabClient, given: str) -> str:
    """The id of the project `given` names: an id as it is, a name looked up in yours."""
    if _is_uuid(given):
        return given
    for project in client.projects():
        if project["name"] == given:
            return str(project["id"])
    raise _fail(
        f"no project of yours is named {given!r}; `memlab projects list` shows yours "
        "(a project you are not in is not shown to you)"
    )


# ------------------------------------------------------------------ audit


def audit(
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. key.revoked, project.created.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only what this user did.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many events to show.")] = 50,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """The audit log, newest first (admins only): who submitted, cancelled, made keys and
    projects, and gave roles."""
    with _client(url) as client:
        page = client.audit(action=action, actor=actor, limit=limit)
    table = Table("time", "actor", "action", "target", title="audit log")
    for event in page["items"]:
        table.add_row(
            _when(event["at"]),
            escape(event["actor"]),
            escape(event["action"]),
            escape(event["target"] or ""),
        )
    console = _out()
    console.print(table)
    if page["next_before"] is not None:
        shown = len(page["items"])
        console.print(f"{shown} shown; there are older events (a larger --limit shows them)")

"""`memlab whoami`, `memlab keys …`, `memlab projects …` and `memlab audit` against an
in-process server with authentication on: ada is an admin, bob is not, and each command
runs as the user whose key is in MEMLAB_API_KEY."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import Result

import memlab_client.cli as cli
from memlab_client.sdk import MemlabClient
from store.db import migrate
from store.identity import create_user
from store.settings import Settings
from tests.api.conftest import sessions_of
from tests.client.conftest import ThreadWorker

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app

MemlabAs = Callable[..., Result]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """conftest's server (the `memlab` fixture), with authentication on."""
    settings = Settings(data_dir=tmp_path, events_poll_interval_s=0.02, auth="on")
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    return settings


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    """The first key of each user: ada, an admin, and bob, who is not."""
    with sessions_of(settings).begin() as session:
        return {
            name: create_user(session, name, admin=name == "ada")[1].key for name in ("ada", "bob")
        }


@pytest.fixture
def memlab_as(run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> MemlabAs:
    """`memlab_as(key, "keys", "list")`: the `memlab` command with MEMLAB_API_KEY=key."""

    def invoke(key: str, *args: str) -> Result:
        monkeypatch.setenv("MEMLAB_API_KEY", key)
        return run_cli(*args)

    return invoke


def succeeded(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_whoami_names_the_user_whether_an_admin_and_its_projects(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    ada = succeeded(memlab_as(keys["ada"], "whoami"))
    assert "ada (admin)" in ada
    rows = [line.split() for line in ada.splitlines()]
    assert ["│", "ada", "│", "maintainer", "│", "yes", "│"] in rows  # her personal project
    assert "bob (not an admin)" in succeeded(memlab_as(keys["bob"], "whoami"))


def test_whoami_without_a_key_is_the_servers_401(memlab_as: MemlabAs) -> None:
    refused = memlab_as("", "whoami")
    assert refused.exit_code == 1
    assert "HTTP 401" in refused.output and "Traceback" not in refused.output


def test_whoami_on_a_server_without_authentication_says_so(
    tmp_path: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_settings = Settings(data_dir=tmp_path / "open", auth="off")
    open_settings.ensure_dirs()
    migrate(open_settings.resolved_database_url)
    app = create_app(open_settings, dispatcher=ThreadWorker(), run_reaper=False)
    with TestClient(app) as open_server:
        monkeypatch.setattr(cli, "_connect", lambda url: MemlabClient(url, http=open_server))
        shown = succeeded(run_cli("whoami"))
    assert "authentication is off: you are the local user" in shown


def test_a_created_key_is_printed_once_works_is_listed_by_prefix_and_revoked_by_it(
    memlab_as: MemlabAs, keys: dict[str, str], memlab: TestClient
) -> None:
    made = succeeded(
        memlab_as(keys["ada"], "keys", "create", "--label", "laptop", "--expires-in-days", "30")
    )
    new_key = made.strip().splitlines()[-1]
    prefix = new_key[:12]
    assert new_key.startswith("mlk_") and made.count(new_key) == 1
    assert "MEMLAB_API_KEY" in made
    assert "ada (admin)" in succeeded(memlab_as(new_key, "whoami"))

    listed = succeeded(memlab_as(keys["ada"], "keys", "list"))
    assert prefix in listed and "laptop" in listed and new_key not in listed
    with MemlabClient(str(memlab.base_url), http=memlab, api_key=keys["ada"]) as sdk:
        listed_keys = sdk.keys()  # a list: ruff (SIM118) takes `in sdk.keys()` for a dict's
    expiry = {key["prefix"]: key["expires_at"] for key in listed_keys}[prefix]
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert abs(datetime.fromisoformat(expiry) - in_30_days) < timedelta(minutes=1)

    revoked = succeeded(memlab_as(keys["ada"], "keys", "revoke", prefix))
    assert f"{prefix}: revoked" in revoked
    refused = memlab_as(new_key, "whoami")
    assert refused.exit_code == 1 and "HTTP 401" in refused.output
    assert "ada (admin)" in succeeded(memlab_as(keys["ada"], "whoami"))  # her other key


def test_keys_expire_sets_an_expiry_and_clears_it(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    prefix = keys["bob"][:12]
    week = succeeded(memlab_as(keys["bob"], "keys", "expire", prefix, "--in-days", "7"))
    in_a_week = (datetime.now(UTC) + timedelta(days=7)).isoformat()[:10]
    assert week.startswith(f"{prefix}: expires {in_a_week}")
    assert succeeded(memlab_as(keys["bob"], "keys", "expire", prefix, "--never")).startswith(
        f"{prefix}: expires never"
    )


def test_keys_expire_at_a_past_moment_is_the_servers_clear_error(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    past = memlab_as(keys["bob"], "keys", "expire", keys["bob"][:12], "--at", "2020-01-01T00:00Z")
    assert past.exit_code == 1
    assert "expires_at is in the past; to stop a key now, revoke it" in past.output
    assert "Traceback" not in past.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--in-days", "3", "--at", "2030-01-01T00:00Z"], "exactly one of"),
        ([], "exactly one of"),
        (["--in-days", "0"], "0 is not in the range x>=1"),
        (["--at", "2030-01-01"], "has no time zone"),
        (["--at", "next week"], "is not an ISO date-time"),
    ],
)
def test_keys_expire_refuses_what_names_no_single_moment(
    memlab_as: MemlabAs, keys: dict[str, str], options: list[str], message: str
) -> None:
    refused = memlab_as(keys["bob"], "keys", "expire", keys["bob"][:12], *options)
    assert refused.exit_code == 2, refused.output
    assert message in refused.output and "Traceback" not in refused.output


def test_keys_create_refuses_two_expiries(memlab_as: MemlabAs, keys: dict[str, str]) -> None:
    options = ("--expires-in-days", "3", "--expires-at", "2030-01-01T00:00Z")
    refused = memlab_as(keys["bob"], "keys", "create", *options)
    assert refused.exit_code == 2 and "not both" in refused.output


def test_a_key_none_of_yours_has_is_named_as_such(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    adas_prefix = keys["ada"][:12]
    refused = memlab_as(keys["bob"], "keys", "revoke", adas_prefix)
    assert refused.exit_code == 1
    assert f"none of your keys has the prefix {adas_prefix}" in refused.output
    assert "ada (admin)" in succeeded(memlab_as(keys["ada"], "whoami"))  # still works


def test_projects_are_created_shared_shown_and_left_by_name(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    ada, bob = keys["ada"], keys["bob"]
    assert "created project grokking" in succeeded(memlab_as(ada, "projects", "create", "grokking"))
    added = succeeded(memlab_as(ada, "projects", "add", "grokking", "bob", "--role", "member"))
    assert "bob is a member of grokking" in added

    shown = succeeded(memlab_as(ada, "projects", "show", "grokking"))
    assert "your role: maintainer" in shown
    members = [line.split() for line in shown.splitlines()]
    assert ["│", "ada", "│", "maintainer", "│"] in members
    assert ["│", "bob", "│", "member", "│"] in members
    assert "grokking" in succeeded(memlab_as(bob, "projects", "list"))

    succeeded(memlab_as(ada, "projects", "remove", "grokking", "bob"))
    after = succeeded(memlab_as(ada, "projects", "show", "grokking"))
    assert "bob" not in after
    gone = memlab_as(bob, "projects", "show", "grokking")
    assert gone.exit_code == 1 and "no project of yours is named 'grokking'" in gone.output


def test_a_project_name_none_of_yours_has_and_a_role_that_is_none_are_refused(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    unknown = memlab_as(keys["ada"], "projects", "add", "nope", "bob", "--role", "member")
    assert unknown.exit_code == 1 and "no project of yours is named 'nope'" in unknown.output
    bad_role = memlab_as(keys["ada"], "projects", "add", "ada", "bob", "--role", "owner")
    assert bad_role.exit_code == 2 and "'owner' is not one of" in bad_role.output
    assert "Traceback" not in unknown.output + bad_role.output


def test_the_audit_log_shows_each_event_to_an_admin_and_refuses_anyone_else(
    memlab_as: MemlabAs, keys: dict[str, str]
) -> None:
    succeeded(memlab_as(keys["bob"], "keys", "create", "--label", "ci"))
    succeeded(memlab_as(keys["ada"], "projects", "create", "grokking"))
    succeeded(memlab_as(keys["ada"], "projects", "add", "grokking", "bob", "--role", "viewer"))

    logged = succeeded(memlab_as(keys["ada"], "audit"))
    rows = [line.split("│")[2:5] for line in logged.splitlines() if line.count("│") == 5]
    events = [tuple(cell.strip() for cell in row) for row in rows]
    assert events[:3] == [
        ("ada", "member.role_set", "bob"),
        ("ada", "project.created", "grokking"),
        ("bob", "key.created", events[2][2]),
    ]
    assert events[2][2].startswith("mlk_")
    by_bob = succeeded(memlab_as(keys["ada"], "audit", "--actor", "bob"))
    assert "key.created" in by_bob and "project.created" not in by_bob
    only_projects = succeeded(memlab_as(keys["ada"], "audit", "--action", "project.created"))
    assert "project.created" in only_projects and "member.role_set" not in only_projects

    refused = memlab_as(keys["bob"], "audit")
    assert refused.exit_code == 1
    assert "HTTP 403" in refused.output and "the audit log is for admins" in refused.output

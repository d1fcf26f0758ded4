"""The server's `memlab`: the client's app (memlab_client.cli) with serve, worker, reaper
and migrate added by `client.cli`, which the `memlab` script loads as an entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import client.cli as server_cli
import memlab_client.cli as cli

SERVER_COMMANDS = {"serve", "worker", "reaper", "migrate"}


def command_names() -> set[str]:
    return {
        command.name or (command.callback.__name__ if command.callback else "")
        for command in cli.app.registered_commands
    }


def test_importing_the_server_cli_adds_its_commands_to_the_clients_app() -> None:
    assert server_cli.app is cli.app
    assert SERVER_COMMANDS | {"submit", "ls", "sweep", "table"} <= command_names()


def test_the_memlab_script_loads_each_module_of_the_memlab_commands_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups: list[str] = []
    started: list[bool] = []

    def entry_points(group: str) -> list[EntryPoint]:
        groups.append(group)
        return [EntryPoint(name="server", value="client.cli", group=group)]

    monkeypatch.setattr(cli, "entry_points", entry_points)  # client.cli is imported already
    monkeypatch.setattr(cli, "app", lambda: started.append(True))
    cli.main()
    assert groups == ["memlab.commands"]
    assert started == [True]


def test_the_installed_memlab_script_serves(tmp_path: Path) -> None:
    # What `scripts/serve` runs: the script in the environment's bin/, not `python -m`.
    script = Path(sys.executable).parent / "memlab"
    assert script.is_file(), "scripts/setup must leave a `memlab` script in .venv/bin"
    shown = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "--data-dir" in shown.stdout


def test_users_add_prints_a_working_key_once_and_refuses_a_taken_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select
    from typer.testing import CliRunner

    from store.db import make_engine, make_session_factory
    from store.identity import authenticate
    from store.models import AuditEvent

    monkeypatch.setenv("MEMLAB_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    made = runner.invoke(cli.app, ["users", "add", "ada", "--admin"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("mlk_")
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'memlab.db'}"))
    with sessions() as session:
        user = authenticate(session, key)
        assert user is not None and user.name == "ada" and user.is_admin
        logged = session.scalars(select(AuditEvent)).all()
        assert [(e.action, e.target) for e in logged] == [("user.created", "ada")]
        assert logged[0].actor_name.startswith("cli:") and logged[0].detail["admin"] is True
    again = runner.invoke(cli.app, ["users", "add", "ada"])
    assert again.exit_code == 1 and "exists" in again.output
    unreadable = runner.invoke(cli.app, ["users", "add", "ada/../bob"])
    assert unreadable.exit_code == 1 and "letters, digits" in unreadable.output

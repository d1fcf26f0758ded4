"""The client distribution (clients/python) on its own: `pip install clients/python` into a
fresh virtual environment without torch gives an SDK and a `memlab` command that talk to a
real server (uvicorn on SQLite and the file broker, no worker), and the server's answers
shape into DataFrames."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.catalog import all_kinds
from memlab_client.sdk import MemlabClient
from store.db import migrate
from store.settings import Settings
from tests.conftest import tiny_capacity_spec
from tests.e2e.conftest import (
    REPO_ROOT,
    dump_logs,
    environment_in,
    free_port,
    python_command,
    running,
    wait_until_ready,
)

pytestmark = pytest.mark.e2e

CLIENT_SOURCE = REPO_ROOT / "clients" / "python"


@dataclass(frozen=True)
class ClientInstall:
    """A server's URL and a virtual environment that holds only the client."""

    base_url: str
    bin: Path  # the environment's bin/ folder

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A command from that environment, where nothing of the checkout can be imported:
        outside it, and without PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.bin,
            env={**env, "COLUMNS": "120"},
        )


def install_client_alone(folder: Path) -> Path:
    """A fresh virtual environment with `pip install <a copy of clients/python>`; its bin/.

    The copy keeps pip's build folders out of the checkout.
    """
    source = folder / "source"
    shutil.copytree(CLIENT_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv / "bin"


@pytest.fixture(scope="module")
def client_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientInstall]:
    """The API alone (runs stay queued), and the client installed while the API starts."""
    folder = tmp_path_factory.mktemp("client-dist")
    env = environment_in(folder)
    settings = Settings(data_dir=Path(env["MEMLAB_DATA_DIR"]))
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    port = free_port()
    api_command = python_command(
        "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port)
    )
    with running(api_command, env, folder / "api.log") as api:
        base_url = f"http://127.0.0.1:{port}"
        try:
            bin_folder = install_client_alone(folder)
            wait_until_ready(base_url, api)
            yield ClientInstall(base_url, bin_folder)
        except BaseException:
            print(dump_logs(folder))
            raise


CLIENT_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys

    from memlab_client import MemlabClient

    server_side = [m for m in ("torch", "celery", "sqlalchemy") if importlib.util.find_spec(m)]
    with MemlabClient(sys.argv[1]) as memlab:
        kinds = sorted(kind["name"] for kind in memlab.kinds())
        try:
            memlab.table("any-sweep")
            frames_error = None
        except ImportError as error:
            frames_error = str(error)
    print(json.dumps({"server_side": server_side, "kinds": kinds, "frames_error": frames_error}))
    """
)


def test_the_client_installs_without_the_server_and_reads_a_live_servers_kinds(
    client_install: ClientInstall,
) -> None:
    answered = client_install.run("python", "-c", CLIENT_SCRIPT, client_install.base_url)
    assert answered.returncode == 0, answered.stderr
    found = json.loads(answered.stdout)
    assert found["server_side"] == []  # no torch, Celery or SQLAlchemy came with it
    assert found["kinds"] == sorted(all_kinds())
    # Without the frames extra a DataFrame method says how to get it.
    assert 'pip install "memlab-client[frames]"' in found["frames_error"]


def test_its_memlab_command_has_the_client_commands_only(client_install: ClientInstall) -> None:
    shown = client_install.run("memlab", "--help")
    assert shown.returncode == 0, shown.stderr
    commands = set(re.findall(r"^│ ([a-z][a-z-]*) ", shown.stdout, flags=re.MULTILINE))
    assert {"submit", "ls", "kinds", "sweep", "sweep-show", "table"} <= commands
    assert not commands & {"serve", "worker", "reaper", "migrate"}
    listed = client_install.run("memlab", "kinds", "--url", client_install.base_url)
    assert listed.returncode == 0, listed.stderr
    assert "capacity_tradeoff" in listed.stdout


def test_a_live_servers_table_and_listing_shape_into_frames(client_install: ClientInstall) -> None:
    """With pandas (this environment stands for the `[frames]` extra): no worker runs, so
    every child stays queued, which is enough to check the columns of the real answers."""
    pytest.importorskip("pandas", reason="the frames extra (pandas) is not installed")
    request = {"base": tiny_capacity_spec(), "axes": {"model.n_embd": [8, 12]}, "seeds": 2}
    with MemlabClient(client_install.base_url) as memlab:
        sweep = memlab.sweep(request)
        cells = memlab.table(sweep["id"])
        runs = memlab.query(f'sweep_id = "{sweep["id"]}"', sort="spec.model.n_embd")

    assert sorted(cells["model.n_embd"]) == [8, 12]
    assert cells["n_queued"].tolist() == [2, 2]
    assert cells["n_succeeded"].tolist() == [0, 0]
    assert len(runs) == 4
    assert runs["status"].tolist() == ["queued"] * 4
    assert runs["kind"].tolist() == ["capacity_tradeoff"] * 4
    assert runs["spec.model.n_embd"].tolist() == [8, 8, 12, 12]
    assert runs["spec.train.steps"].tolist() == [tiny_capacity_spec()["train"]["steps"]] * 4


FRAMES_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys

    from memlab_client import MemlabClient

    server_side = [m for m in ("torch", "celery", "sqlalchemy") if importlib.util.find_spec(m)]
    with MemlabClient(sys.argv[1]) as memlab:
        request = {"base": json.loads(sys.argv[2]), "seeds": 2}
        cells = memlab.table(memlab.sweep(request)["id"])
    print(json.dumps({"server_side": server_side, "type": type(cells).__name__,
                      "queued": cells["n_queued"].tolist()}))
    """
)


def test_with_the_frames_extra_table_returns_a_dataframe_in_the_client_s_own_environment(
    client_install: ClientInstall,
) -> None:
    # Last in the module: the extra goes into the environment the tests above used bare.
    source = client_install.bin.parent.parent / "source"
    installed = client_install.run("python", "-m", "pip", "install", "--quiet", f"{source}[frames]")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    base = json.dumps(tiny_capacity_spec())
    answered = client_install.run("python", "-c", FRAMES_SCRIPT, client_install.base_url, base)
    assert answered.returncode == 0, answered.stderr
    found = json.loads(answered.stdout)
    assert found == {"server_side": [], "type": "DataFrame", "queued": [2]}

"""The dashboard's files: one page shell for each of its paths, its scripts and styles
from the package, and the committed plotly.js bundle; nothing from a CDN."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.dashboard.pages import PAGE_PATHS, PLOTLY_FILE, PLOTLY_PATH, PLOTLY_VERSION, STATIC_DIR
from store.settings import Settings

STATIC_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
# The dashboard's own files; the vendored plotly.js bundle's strings name its docs' hosts.
OWN_FILES = [p for p in STATIC_FILES if p.parent.name != "vendor"]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One server with authentication on: the files need no database of their own."""
    folder: Path = tmp_path_factory.mktemp("pages")
    settings = Settings(
        data_dir=folder, broker_url=f"sqla+sqlite:///{folder / 'broker.db'}", auth="on"
    )
    with TestClient(create_app(settings, run_reaper=False)) as client:
        yield client


def concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", str(uuid.uuid4()), path)


@pytest.mark.parametrize("path", ["/", *PAGE_PATHS])
def test_every_dashboard_path_answers_the_shell(app_client: TestClient, path: str) -> None:
    """Open without a key (the shell holds no data; its scripts ask /v1 with the
    session), and never cached, so that an upgrade's scripts load."""
    response = app_client.get(concrete(path))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert f'href="{PLOTLY_PATH}" as="script"' in response.text
    assert '<script src="/ui/static/js/app.js" type="module">' in response.text


def test_the_shell_is_the_same_whoever_asks(app_client: TestClient) -> None:
    assert app_client.get(f"/runs/{uuid.uuid4()}").content == app_client.get("/").content


def test_plotly_is_served_from_the_package(app_client: TestClient) -> None:
    """The committed bundle, with its licence; its path names its version."""
    assert PLOTLY_FILE.read_text()[:120].startswith(
        f"/**\n* plotly.js (cartesian - minified) v{PLOTLY_VERSION}"
    )
    assert "MIT License" in (PLOTLY_FILE.parent / "plotly-LICENSE.txt").read_text()
    zipped = app_client.get(PLOTLY_PATH, headers={"accept-encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "immutable" in zipped.headers["cache-control"]
    plain = app_client.get(PLOTLY_PATH, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == PLOTLY_FILE.read_bytes()
    # httpx undid the gzip: the two bodies are the same bundle.
    assert zipped.content == plain.content


@pytest.mark.parametrize("file", OWN_FILES, ids=lambda p: str(p.relative_to(STATIC_DIR)))
def test_no_static_file_loads_anything_from_elsewhere(file: Path) -> None:
    """An offline lab network has no CDN: no script, style or font from another host."""
    text = re.sub(r'xmlns="[^"]*"', "", file.read_text())  # a namespace's name, not a load
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), file


def test_every_module_a_script_imports_exists() -> None:
    imports = re.compile(r"""(?:from\s+|import\()\s*["'](\.{1,2}/[^"']+)["']""")
    scripts = list(STATIC_DIR.rglob("*.js"))
    assert len(scripts) >= 12
    for script in scripts:
        for target in imports.findall(script.read_text()):
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports {target}"


def test_the_scripts_and_styles_are_served(app_client: TestClient) -> None:
    for file in STATIC_FILES:
        relative = file.relative_to(STATIC_DIR).as_posix()
        response = app_client.get(f"/ui/static/{relative}")
        assert response.status_code == 200, relative
        assert response.content == file.read_bytes()
    js = app_client.get("/ui/static/js/app.js")
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert app_client.get("/ui/static/%2E%2E/%2E%2E/auth.py").status_code == 404
    assert js.headers["cache-control"] == "no-cache"  # revalidated: an upgrade is seen

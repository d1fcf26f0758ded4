"""The access matrix: every route of the OpenAPI document, asked by every kind of caller.

Ada owns project P (her personal project) with a succeeded experiment, its probe, an
ended sweep and a key. Around her: a maintainer, a member and a viewer of P, a stranger
(a user in no project of hers), an admin who is not in P, and a caller with no key.

The expected answers are written here from the issue's rules, one row per kind of route,
not read from the code's policy, so that a wrong rule in the code cannot agree with this
test. Every route of the OpenAPI document must be listed in ROUTES: a new route fails
the test until someone decides who may call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from store import workers
from store.identity import create_user, set_role
from store.models import Role
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec

CALLERS = ("owner", "maintainer", "member", "viewer", "stranger", "admin", "anonymous")
OK = "ok"  # any 2xx

# Who gets what, by kind of route. The rows are the rules:
#  - a run, sweep or project you are not in is a 404, as if it did not exist;
#  - viewer reads; member also submits and cancels its own; maintainer also cancels
#    anyone's and manages members; an action your role does not allow is a 403;
#  - admins read the audit log and manage keys, and see no project's runs for it;
#  - without a key everything but the health checks is a 401.
EXPECTED: dict[str, dict[str, int | str]] = {
    "open": dict.fromkeys(CALLERS, OK),
    "any_user": {**dict.fromkeys(CALLERS, OK), "anonymous": 401},
    "read_in_project": {
        "owner": OK,
        "maintainer": OK,
        "member": OK,
        "viewer": OK,
        "stranger": 404,
        "admin": 404,
        "anonymous": 401,
    },
    # The project is a body field: one you are not in is a 422 "no project", as for an id
    # that does not exist.
    "submit_to_project": {
        "owner": OK,
        "maintainer": OK,
        "member": OK,
        "viewer": 403,
        "stranger": 422,
        "admin": 422,
        "anonymous": 401,
    },
    # The probed experiment is a body field: an experiment you cannot see is a 422
    # "no such experiment", as for an id that does not exist.
    "probe_in_project": {
        "owner": OK,
        "maintainer": OK,
        "member": OK,
        "viewer": 403,
        "stranger": 422,
        "admin": 422,
        "anonymous": 401,
    },
    "cancel_owners_run": {
        "owner": OK,
        "maintainer": OK,
        "member": 403,
        "viewer": 403,
        "stranger": 404,
        "admin": 404,
        "anonymous": 401,
    },
    "manage_members": {
        "owner": OK,
        "maintainer": OK,
        "member": 403,
        "viewer": 403,
        "stranger": 404,
        "admin": 404,
        "anonymous": 401,
    },
    "owners_key": {
        **dict.fromkeys(CALLERS, 404),
        "owner": OK,
        "admin": OK,
        "anonymous": 401,
    },
    "admin_only": {**dict.fromkeys(CALLERS, 403), "admin": OK, "anonymous": 401},
}


@dataclass
class World:
    """Ada's project and what is in it; `fresh_*` make a new thing for one request that
    changes it (a cancelled run cannot be cancelled twice)."""

    client: TestClient
    settings: Settings
    keys: dict[str, str]
    project: str
    experiment: str
    probe: str
    sweep: str
    owners_key: str
    artifact: str  # the path of one of the experiment's stored files
    spare_user: str = "spare"
    made: list[str] = field(default_factory=list)

    def post_as_owner(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=as_user(self.keys["owner"]))
        assert response.status_code == 201, response.text
        return dict(response.json())

    def fresh_experiment(self) -> str:
        return str(self.post_as_owner("/v1/experiments", {"spec": tiny_capacity_spec()})["id"])

    def fresh_probe(self) -> str:
        body = {"experiment_id": self.experiment, "spec": {"kind": "exact_recall"}}
        return str(self.post_as_owner("/v1/probes", body)["id"])

    def fresh_sweep(self) -> str:
        return str(self.post_as_owner("/v1/sweeps", {"base": tiny_capacity_spec()})["id"])

    def fresh_key(self) -> str:
        return str(self.post_as_owner("/v1/keys", {"label": "matrix"})["id"])

    def fresh_member(self) -> str:
        """A throwaway user in the project, to be removed."""
        name = f"spare{len(self.made)}"
        self.made.append(name)
        with sessions_of(self.settings).begin() as session:
            user, _ = create_user(session, name)
            set_role(session, uuid.UUID(self.project), user.id, Role.viewer)
        return name


@dataclass(frozen=True)
class Call:
    """A request to make: its path and body given the world."""

    kind: str  # a row of EXPECTED
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any] | None] = lambda world: None
    params: Callable[[World], dict[str, str]] = lambda world: {}


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat()


ROUTES: dict[tuple[str, str], Call] = {
    ("GET", "/healthz"): Call("open", lambda w: "/healthz"),
    ("GET", "/readyz"): Call("open", lambda w: "/readyz"),
    ("GET", "/v1/kinds"): Call("any_user", lambda w: "/v1/kinds"),
    ("GET", "/v1/kinds/{name}"): Call("any_user", lambda w: "/v1/kinds/capacity_tradeoff"),
    ("GET", "/v1/probe-kinds"): Call("any_user", lambda w: "/v1/probe-kinds"),
    ("GET", "/v1/probe-kinds/{name}"): Call("any_user", lambda w: "/v1/probe-kinds/loss_mia"),
    ("GET", "/v1/me"): Call("any_user", lambda w: "/v1/me"),
    # The dashboard's login takes a key in its body: anyone may try one (the key decides).
    ("POST", "/v1/session"): Call(
        "open", lambda w: "/v1/session", lambda w: {"api_key": w.keys["owner"]}
    ),
    ("GET", "/v1/session"): Call("any_user", lambda w: "/v1/session"),
    ("DELETE", "/v1/session"): Call("open", lambda w: "/v1/session"),
    ("GET", "/v1/workers"): Call("any_user", lambda w: "/v1/workers"),
    ("POST", "/v1/workers/{name}/drain"): Call(
        "admin_only", lambda w: f"/v1/workers/{MATRIX_NODE.name}/drain"
    ),
    ("GET", "/v1/keys"): Call("any_user", lambda w: "/v1/keys"),
    ("POST", "/v1/keys"): Call("any_user", lambda w: "/v1/keys", lambda w: {"label": "x"}),
    ("GET", "/v1/projects"): Call("any_user", lambda w: "/v1/projects"),
    ("POST", "/v1/projects"): Call(
        "any_user", lambda w: "/v1/projects", lambda w: {"name": f"p{uuid.uuid4().hex[:8]}"}
    ),
    # Listings answer everyone; what they list is checked in test_listings_hide_...
    ("GET", "/v1/experiments"): Call("any_user", lambda w: "/v1/experiments"),
    ("GET", "/v1/probes"): Call("any_user", lambda w: "/v1/probes"),
    ("GET", "/v1/sweeps"): Call("any_user", lambda w: "/v1/sweeps"),
    ("GET", "/v1/experiments/facets"): Call("any_user", lambda w: "/v1/experiments/facets"),
    ("POST", "/v1/experiments"): Call(
        "submit_to_project",
        lambda w: "/v1/experiments",
        lambda w: {"spec": tiny_capacity_spec(), "project_id": w.project},
    ),
    ("POST", "/v1/sweeps"): Call(
        "submit_to_project",
        lambda w: "/v1/sweeps",
        lambda w: {"base": tiny_capacity_spec(), "project_id": w.project},
    ),
    ("POST", "/v1/probes"): Call(
        "probe_in_project",
        lambda w: "/v1/probes",
        lambda w: {"experiment_id": w.experiment, "spec": {"kind": "exact_recall"}},
    ),
    ("GET", "/v1/experiments/compare"): Call(
        "read_in_project",
        lambda w: "/v1/experiments/compare",
        params=lambda w: {"ids": w.experiment},
    ),
    ("GET", "/v1/experiments/{experiment_id}"): Call(
        "read_in_project", lambda w: f"/v1/experiments/{w.experiment}"
    ),
    ("GET", "/v1/experiments/{experiment_id}/metrics"): Call(
        "read_in_project", lambda w: f"/v1/experiments/{w.experiment}/metrics"
    ),
    ("GET", "/v1/experiments/{experiment_id}/artifacts"): Call(
        "read_in_project", lambda w: f"/v1/experiments/{w.experiment}/artifacts"
    ),
    ("GET", "/v1/experiments/{experiment_id}/artifacts/{path}"): Call(
        "read_in_project", lambda w: f"/v1/experiments/{w.experiment}/artifacts/{w.artifact}"
    ),
    ("GET", "/v1/experiments/{experiment_id}/events"): Call(
        "read_in_project", lambda w: f"/v1/experiments/{w.experiment}/events"
    ),
    ("GET", "/v1/probes/{probe_id}"): Call("read_in_project", lambda w: f"/v1/probes/{w.probe}"),
    ("GET", "/v1/probes/{probe_id}/events"): Call(
        "read_in_project", lambda w: f"/v1/probes/{w.probe}/events"
    ),
    ("GET", "/v1/sweeps/{sweep_id}"): Call("read_in_project", lambda w: f"/v1/sweeps/{w.sweep}"),
    ("GET", "/v1/sweeps/{sweep_id}/events"): Call(
        "read_in_project", lambda w: f"/v1/sweeps/{w.sweep}/events"
    ),
    ("GET", "/v1/sweeps/{sweep_id}/table"): Call(
        "read_in_project", lambda w: f"/v1/sweeps/{w.sweep}/table"
    ),
    ("GET", "/v1/projects/{project_id}"): Call(
        "read_in_project", lambda w: f"/v1/projects/{w.project}"
    ),
    ("POST", "/v1/experiments/{experiment_id}/cancel"): Call(
        "cancel_owners_run", lambda w: f"/v1/experiments/{w.fresh_experiment()}/cancel"
    ),
    ("POST", "/v1/probes/{probe_id}/cancel"): Call(
        "cancel_owners_run", lambda w: f"/v1/probes/{w.fresh_probe()}/cancel"
    ),
    ("POST", "/v1/sweeps/{sweep_id}/cancel"): Call(
        "cancel_owners_run", lambda w: f"/v1/sweeps/{w.fresh_sweep()}/cancel"
    ),
    ("PUT", "/v1/projects/{project_id}/members/{user_name}"): Call(
        "manage_members",
        lambda w: f"/v1/projects/{w.project}/members/{w.spare_user}",
        lambda w: {"role": "viewer"},
    ),
    ("DELETE", "/v1/projects/{project_id}/members/{user_name}"): Call(
        "manage_members", lambda w: f"/v1/projects/{w.project}/members/{w.fresh_member()}"
    ),
    ("PATCH", "/v1/keys/{key_id}"): Call(
        "owners_key", lambda w: f"/v1/keys/{w.owners_key}", lambda w: {"expires_at": _later()}
    ),
    ("POST", "/v1/keys/{key_id}/revoke"): Call(
        "owners_key", lambda w: f"/v1/keys/{w.fresh_key()}/revoke"
    ),
    ("GET", "/v1/audit"): Call("admin_only", lambda w: "/v1/audit"),
}


MATRIX_NODE = workers.Registration(
    name="matrix@box",
    hostname="box",
    pid=1,
    queues=["cpu"],
    devices=[],
    concurrency=1,
    version="test",
)


@pytest.fixture
def world(app_client: TestClient, secured: Settings) -> World:
    from store.artifacts import ArtifactStore
    from worker.runner import RunContext, execute_run

    keys: dict[str, str] = {}
    with sessions_of(secured).begin() as session:
        for caller in CALLERS[:-1]:
            _, issued = create_user(session, caller, admin=caller == "admin")
            keys[caller] = issued.key
        create_user(session, "spare")
        workers.register(session, MATRIX_NODE)
    keys["anonymous"] = ""
    owner = as_user(keys["owner"])
    spec = tiny_capacity_spec(task="facts", probes=[{"kind": "exact_recall"}])
    experiment = app_client.post("/v1/experiments", json={"spec": spec}, headers=owner).json()
    execute_run(
        RunContext(
            sessions=sessions_of(secured),
            artifacts=ArtifactStore(secured.resolved_artifact_dir),
            worker_name="matrix-worker",
            flush_interval_s=0.0,
            cancel_check_interval_s=0.0,
        ),
        uuid.UUID(experiment["id"]),
    )
    probe = app_client.get(
        "/v1/probes", params={"experiment_id": experiment["id"]}, headers=owner
    ).json()["items"][0]
    assert probe["status"] == "succeeded"
    sweep = app_client.post("/v1/sweeps", json={"base": tiny_capacity_spec()}, headers=owner)
    sweep_id = sweep.json()["id"]
    assert app_client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=owner).is_success  # ended
    project = experiment["project_id"]
    with sessions_of(secured).begin() as session:
        for caller, role in (
            ("maintainer", Role.maintainer),
            ("member", Role.member),
            ("viewer", Role.viewer),
        ):
            user = session.scalar(_user_id(caller))
            set_role(session, uuid.UUID(project), user, role)
    owners_key = app_client.get("/v1/keys", headers=owner).json()["items"][0]["id"]
    artifacts = app_client.get(f"/v1/experiments/{experiment['id']}/artifacts", headers=owner)
    return World(
        client=app_client,
        settings=secured,
        keys=keys,
        project=project,
        experiment=experiment["id"],
        probe=probe["id"],
        sweep=sweep_id,
        owners_key=owners_key,
        artifact=artifacts.json()[0]["path"],
    )


def _user_id(name: str) -> Any:
    from sqlalchemy import select

    from store.models import User

    return select(User.id).where(User.name == name)


def test_every_route_is_in_the_matrix(app_client: TestClient) -> None:
    document = app_client.app.openapi()  # type: ignore[attr-defined]
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert served == set(ROUTES), {
        "not in the matrix": sorted(served - set(ROUTES)),
        "no longer served": sorted(set(ROUTES) - served),
    }


def test_each_caller_gets_what_the_rules_say_on_every_route(world: World) -> None:
    wrong = []
    for (method, _), call in ROUTES.items():
        for caller in CALLERS:
            expected = EXPECTED[call.kind][caller]
            headers = as_user(world.keys[caller]) if world.keys[caller] else {}
            path = call.path(world)
            response = world.client.request(
                method,
                path,
                json=call.body(world),
                params=call.params(world),
                headers=headers,
            )
            got = response.status_code
            world.client.cookies.clear()  # a login's session must not carry over
            if (expected == OK and not 200 <= got < 300) or (expected != OK and got != expected):
                wrong.append((method, path, caller, expected, got, response.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))


def test_listings_show_the_projects_runs_to_its_members_only(world: World) -> None:
    listed = {
        "/v1/experiments": world.experiment,
        "/v1/probes": world.probe,
        "/v1/sweeps": world.sweep,
        "/v1/projects": world.project,
    }
    members = {"owner", "maintainer", "member", "viewer"}
    for caller in ("owner", "maintainer", "member", "viewer", "stranger", "admin"):
        for path, resource in listed.items():
            text = world.client.get(path, headers=as_user(world.keys[caller])).text
            assert (resource in text) == (caller in members), (caller, path)
        where = world.client.get(
            "/v1/experiments",
            params={"where": f'id = "{world.experiment}"', "format": "csv"},
            headers=as_user(world.keys[caller]),
        )
        assert (world.experiment in where.text) == (caller in members), (caller, "where")

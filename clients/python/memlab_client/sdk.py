"""A small synchronous Python client for the memlab HTTP API.

>>> client = MemlabClient("http://127.0.0.1:8000")           # doctest: +SKIP
>>> run = client.submit({"kind": "capacity_tradeoff"})          # doctest: +SKIP
>>> client.wait(run["id"])["result"]["final"]                   # doctest: +SKIP
>>> sweep = client.sweep({"base": {"kind": "capacity_tradeoff"},
...                       "axes": {"model.n_embd": [14, 28]}, "seeds": 2})  # doctest: +SKIP
>>> client.wait_sweep(sweep["id"])["counts"]                    # doctest: +SKIP
>>> client.table(sweep["id"])          # a pandas DataFrame (the [frames] extra)  # doctest: +SKIP
"""

from __future__ import annotations

import builtins  # `list` is also a method here: its annotations say builtins.list
import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from memlab_client import frames

if TYPE_CHECKING:
    import pandas as pd

TERMINAL = {"succeeded", "failed", "cancelled"}


class MemlabError(Exception):
    """The server answered with an error; `status` is the HTTP status, `body` its JSON.

    `code` is the error's stable name (e.g. `validation_error`), `message` the server's
    message and `details` one {"path", "message", "type"} per field at fault.
    """

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.body = body
        self.code: str = error.get("code") or "error"
        self.message: str = error.get("message") or str(body)
        self.details: list[dict[str, Any]] = error.get("details") or []
        super().__init__(f"HTTP {status}: {self.message}")

    @property
    def headline(self) -> str:
        """The message without the server's own summary of `details`.

        The server ends a message that has details with a summary of them ("invalid
        request: spec.train.lr: …"); shown beside the details, that summary repeats them.
        """
        if not self.details:
            return self.message
        first = self.details[0]
        summary_start = self.message.find(f"{first.get('path') or '(body)'}: ")
        if summary_start <= 0:
            return self.message
        return self.message[:summary_start].rstrip(" :;")


class MemlabClient:
    """Thin wrapper over the /v1 endpoints: each method returns the decoded JSON, except
    `table`, `query` and `compare`, which return pandas DataFrames (the `[frames]` extra)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 30.0,
        http: httpx.Client | None = None,
        api_key: str | None = None,
    ) -> None:
        """`http`, when given, is used as is (e.g. a FastAPI TestClient) and left open.
        `api_key` (default: the `MEMLAB_API_KEY` environment variable) is sent as
        `Authorization: Bearer KEY` on every request; a server without authentication
        ignores it."""
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)
        key = api_key if api_key is not None else os.environ.get("MEMLAB_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MemlabClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        response = self._http.request(method, path, headers=headers, **kwargs)
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise MemlabError(response.status_code, body)
        return body

    def submit(
        self,
        spec: dict[str, Any],
        name: str | None = None,
        tags: builtins.list[str] | None = None,
        *,
        priority: int = 0,
        resources: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST an experiment spec; returns the queued experiment.

        `priority` (-10 to 10; above 0 only an admin may give) orders it against other
        runs; `resources`, e.g. `{"gpus": 1, "gpu_memory_gib": 40}`, sends it only to a
        worker node that has them.
        """
        payload: dict[str, Any] = {"spec": spec, "tags": tags or []}
        if name is not None:
            payload["name"] = name
        if priority:  # only when asked: a server older than priorities refuses the field
            payload["priority"] = priority
        if resources is not None:
            payload["resources"] = resources
        return dict(self._request("POST", "/v1/experiments", json=payload))

    def get(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/experiments/{experiment_id}"))

    def list(self, sweep_id: str | None = None, **filters: Any) -> dict[str, Any]:
        """One page of experiments, newest first; `sweep_id` keeps one sweep's children."""
        params = {k: v for k, v in {"sweep_id": sweep_id, **filters}.items() if v is not None}
        return dict(self._request("GET", "/v1/experiments", params=params))

    def cancel(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/v1/experiments/{experiment_id}/cancel"))

    def metrics(
        self,
        experiment_id: str,
        keys: builtins.list[str] | None = None,
        max_points: int | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if keys:
            params["keys"] = ",".join(keys)
        if max_points:
            params["max_points"] = max_points
        return dict(self._request("GET", f"/v1/experiments/{experiment_id}/metrics", params=params))

    def artifacts(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        """Checkpoints and outputs the run stored: kind, step, path, size, sha256."""
        return list(self._request("GET", f"/v1/experiments/{experiment_id}/artifacts"))

    def kinds(self) -> builtins.list[dict[str, Any]]:
        """Every experiment kind: name, description, json_schema and default_spec."""
        return list(self._request("GET", "/v1/kinds"))

    def events(self, experiment_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow the experiment's server-sent events: yields (event name, data) until `end`."""
        return self._events(f"/v1/experiments/{experiment_id}/events")

    def probe_events(self, probe_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The same for a probe, from /v1/probes/{id}/events.

        A server from before that route answers 404 for it and streams a probe's events
        under /v1/experiments/{id}/events instead; a probe that exists on neither is a 404.
        """
        try:
            yield from self._events(f"/v1/probes/{probe_id}/events")
        except MemlabError as error:
            if error.status != 404:
                raise
            yield from self._events(f"/v1/experiments/{probe_id}/events")

    def _events(
        self, path: str, read_timeout: float | None = None
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """(event, data) from a server-sent event stream, until `end`.

        `read_timeout` bounds the wait for each next line (None: wait as long as it takes).
        """
        timeout = httpx.Timeout(30.0, read=read_timeout)
        with self._http.stream("GET", path, timeout=timeout, headers=self._headers) as response:
            if response.status_code >= 400:
                response.read()
                raise MemlabError(response.status_code, response.json())
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line.removeprefix("data:").strip())
                    if event == "end":
                        return

    def wait(
        self, experiment_id: str, on_event: Callable[[str, dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Block until the experiment ends (following its events); returns the final record."""
        self._follow_events(self.events(experiment_id), on_event)
        return self.get(experiment_id)

    @staticmethod
    def _follow_events(
        events: Iterator[tuple[str, dict[str, Any]]],
        on_event: Callable[[str, dict[str, Any]], None] | None,
    ) -> None:
        for event, data in events:
            if on_event:
                on_event(event, data)
            if data.get("status") in TERMINAL:
                break

    # ------------------------------------------------------------------ probes

    def probe(
        self,
        experiment_id: str,
        spec: dict[str, Any],
        name: str | None = None,
        tags: builtins.list[str] | None = None,
    ) -> dict[str, Any]:
        """POST a probe of a succeeded experiment; returns the queued probe."""
        payload: dict[str, Any] = {"experiment_id": experiment_id, "spec": spec, "tags": tags or []}
        if name is not None:
            payload["name"] = name
        return dict(self._request("POST", "/v1/probes", json=payload))

    def get_probe(self, probe_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/probes/{probe_id}"))

    def list_probes(self, experiment_id: str | None = None, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in {"experiment_id": experiment_id, **filters}.items() if v}
        return dict(self._request("GET", "/v1/probes", params=params))

    def probe_kinds(self) -> builtins.list[dict[str, Any]]:
        return list(self._request("GET", "/v1/probe-kinds"))

    def wait_probe(
        self, probe_id: str, on_event: Callable[[str, dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Block until the probe ends (it streams the same events as an experiment)."""
        self._follow_events(self.probe_events(probe_id), on_event)
        return self.get_probe(probe_id)

    # ------------------------------------------------------------------ sweeps

    def sweep(
        self, request: dict[str, Any], *, reuse: bool = False, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST a sweep (`{"base", "axes", "seeds", "method", …}`); returns the queued sweep.

        `reuse=True` lets each cell reuse a succeeded experiment with the same spec; an
        `idempotency_key` makes a retry of the same request return the same sweep.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        params = {"reuse": "true" if reuse else "false"}
        return dict(
            self._request("POST", "/v1/sweeps", json=request, params=params, headers=headers)
        )

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/sweeps/{sweep_id}"))

    def sweep_table(self, sweep_id: str) -> dict[str, Any]:
        """The sweep's table: one row per cell, with `cell`, `counts` and `values` (each
        numeric result as {n, mean, std, ci95_low, ci95_high} over the succeeded seeds)."""
        return dict(self._request("GET", f"/v1/sweeps/{sweep_id}/table"))

    def sweep_table_file(self, sweep_id: str, table_format: str = "csv") -> bytes:
        """The sweep's table as a `csv` or `parquet` file's bytes (one row per cell, a
        column per axis, status count and statistic)."""
        response = self._http.get(
            f"/v1/sweeps/{sweep_id}/table", params={"format": table_format}, headers=self._headers
        )
        if response.status_code >= 400:
            raise MemlabError(response.status_code, response.json())
        return response.content

    def list_sweeps(self, **filters: Any) -> dict[str, Any]:
        """One page of sweeps, newest first: `limit`, `offset`, `kind`, `tag`."""
        params = {k: v for k, v in filters.items() if v is not None}
        return dict(self._request("GET", "/v1/sweeps", params=params))

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Cancel every unfinished experiment of the sweep; returns the sweep."""
        return dict(self._request("POST", f"/v1/sweeps/{sweep_id}/cancel"))

    def sweep_experiments(
        self, sweep_id: str, page_size: int = 200
    ) -> builtins.list[dict[str, Any]]:
        """Every experiment of the sweep (its children), page by page, newest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.list(sweep_id=sweep_id, limit=page_size, offset=len(found))
            found.extend(page["items"])
            if not page["items"] or len(found) >= page["total"]:
                return found

    def sweep_events(
        self, sweep_id: str, read_timeout: float | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow the sweep's server-sent events: yields (event name, data) until `end`.

        Data is `{"status", "counts", "progress", "n_runs"}`; `counts` has one number per
        status. `read_timeout` bounds the wait for each next line.
        """
        return self._events(f"/v1/sweeps/{sweep_id}/events", read_timeout=read_timeout)

    def wait_sweep(
        self,
        sweep_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        timeout: float | None = None,
        poll_interval: float = 2.0,
    ) -> dict[str, Any]:
        """Block until every experiment of the sweep has ended; returns the final sweep.

        Follows the sweep's events and calls `on_update` with each one's data (status,
        counts, progress, n_runs). If the stream drops before its `end`, it polls the
        sweep every `poll_interval` seconds instead, calling `on_update` with each. Past
        `timeout` seconds it raises `TimeoutError`; the stream is checked against it
        between events and waits at most the time left at its start for the next one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        events = self._events(f"/v1/sweeps/{sweep_id}/events", read_timeout=_time_left(deadline))
        try:
            for event, data in events:
                if on_update:
                    on_update(data)
                if event == "end" or data.get("status") in TERMINAL:
                    return self.get_sweep(sweep_id)
                _check_deadline(deadline, sweep_id)
        except httpx.TransportError:
            _check_deadline(deadline, sweep_id)  # not a time-out: the stream dropped
        finally:
            events.close()
        # The stream ended before its `end` (a restart, a proxy's time limit): poll.
        return self._poll_sweep(sweep_id, on_update, deadline, poll_interval)

    def _poll_sweep(
        self,
        sweep_id: str,
        on_update: Callable[[dict[str, Any]], None] | None,
        deadline: float | None,
        poll_interval: float,
    ) -> dict[str, Any]:
        while True:
            sweep = self.get_sweep(sweep_id)
            if on_update:
                on_update(sweep)
            if sweep["status"] in TERMINAL:
                return sweep
            _check_deadline(deadline, sweep_id)
            left = _time_left(deadline)
            time.sleep(poll_interval if left is None else min(poll_interval, left))

    # ------------------------------------------------------------------ users, keys, projects

    def workers(self, stopped: bool = False) -> builtins.list[dict[str, Any]]:
        """The worker nodes by name: `queues`, `devices`, `concurrency`, `busy`, `live`,
        `heartbeat_at` and `running` (runs of your projects show their id and kind);
        `stopped` adds nodes that have shut down."""
        found = self._request("GET", "/v1/workers", params={"stopped": stopped})
        return list(found["items"])

    def me(self) -> dict[str, Any]:
        """Who the server takes this client to be: `name`, `is_admin`, `authenticated`
        (false on a server without authentication), `personal_project` and `projects`,
        each with `id`, `name`, `personal` and your `role`."""
        return dict(self._request("GET", "/v1/me"))

    def keys(self, user: str | None = None) -> builtins.list[dict[str, Any]]:
        """Your API keys, newest first, revoked and expired ones too (admins: `user`'s).
        Each has `id`, `prefix`, `label`, `expires_at`, `revoked_at`, `active`; never the key."""
        params = {"user": user} if user is not None else {}
        return list(self._request("GET", "/v1/keys", params=params)["items"])

    def create_key(
        self,
        label: str | None = None,
        expires_at: datetime | str | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """A new key (admins: for `user`); the answer's `key` is shown this once only.
        `expires_at` (a datetime with a time zone, or an ISO string with one) is when it
        stops working; none: never."""
        payload: dict[str, Any] = {"label": label, "expires_at": _iso(expires_at)}
        if user is not None:
            payload["user"] = user
        return dict(self._request("POST", "/v1/keys", json=payload))

    def set_key_expiry(self, key_id: str, expires_at: datetime | str | None) -> dict[str, Any]:
        """Set when the key stops working (None: never); it must be in the future."""
        body = {"expires_at": _iso(expires_at)}
        return dict(self._request("PATCH", f"/v1/keys/{quote(key_id, safe='')}", json=body))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke the key: its next request is refused (401). Returns the key as listed."""
        return dict(self._request("POST", f"/v1/keys/{quote(key_id, safe='')}/revoke"))

    def projects(self) -> builtins.list[dict[str, Any]]:
        """The projects you are in, by name: `id`, `name`, `personal` and your `role`."""
        return list(self._request("GET", "/v1/projects")["items"])

    def project(self, project_id: str) -> dict[str, Any]:
        """One project with its `members` (`user`, `role`)."""
        return dict(self._request("GET", f"/v1/projects/{quote(project_id, safe='')}"))

    def create_project(self, name: str) -> dict[str, Any]:
        """A shared project with you as its maintainer; a taken name is a 409."""
        return dict(self._request("POST", "/v1/projects", json={"name": name}))

    def set_member(self, project_id: str, user: str, role: str) -> dict[str, Any]:
        """Add `user` to the project as `role` (viewer, member or maintainer), or change its
        role; maintainers only."""
        return dict(self._request("PUT", _member_path(project_id, user), json={"role": role}))

    def remove_member(self, project_id: str, user: str) -> None:
        """Take `user` out of the project (maintainers remove anyone; anyone leaves)."""
        self._request("DELETE", _member_path(project_id, user))

    def audit(self, **filters: Any) -> dict[str, Any]:
        """One page of the audit log, newest first (admins only): `items` and `next_before`,
        which as `before=` gives the next, older page. Filters: `action`, `actor`,
        `project_id`, `since` (a datetime with a time zone or an ISO string), `limit`."""
        params = {
            key: _iso(value) if isinstance(value, datetime) else value
            for key, value in filters.items()
            if value is not None
        }
        return dict(self._request("GET", "/v1/audit", params=params))

    # ------------------------------------------------------------------ DataFrames

    def table(self, sweep_id: str) -> pd.DataFrame:
        """The sweep's table as a DataFrame: one row per cell, a column per axis, `n_<status>`
        counts and `<path>.mean/.std/.ci95_low/.ci95_high/.n` per summarized value."""
        frames.require_pandas()
        body = self._request("GET", f"/v1/sweeps/{sweep_id}/table", params={"format": "json"})
        return frames.table_frame(body)

    def query(
        self,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        page_size: int = 200,
    ) -> pd.DataFrame:
        """Every experiment the `where` filter matches (docs/api.md gives its language), in
        `sort`'s order (default newest first), at most `limit` of them, as a DataFrame: id,
        name, kind, status, created_at, then `spec.*` and `result.*` as dotted columns.

        >>> memlab.query('kind = "capacity_tradeoff" and status = "succeeded"',
        ...              sort="-result.final.facts")          # doctest: +SKIP
        """
        frames.require_pandas()
        found: builtins.list[dict[str, Any]] = []
        while limit is None or len(found) < limit:
            size = page_size if limit is None else min(page_size, limit - len(found))
            page = self.list(where=where, sort=sort, limit=size, offset=len(found))
            found.extend(page["items"])
            if not page["items"] or len(found) >= page["total"]:
                break
        return frames.experiments_frame(found)

    def compare(
        self, ids: builtins.list[str], keys: builtins.list[str] | None = None
    ) -> pd.DataFrame:
        """The metric series of several experiments side by side: a DataFrame indexed by
        step with a column per (run id, key), e.g. `frame[run_id, "train/loss"]`; `keys`
        (default: every key the runs have) picks the series."""
        frames.require_pandas()
        if not ids:
            raise ValueError("compare needs at least one experiment id")
        params = {"ids": ",".join(ids)}
        if keys:
            params["keys"] = ",".join(keys)
        body = self._request("GET", "/v1/experiments/compare", params=params)
        return frames.compare_frame(body, run_order=ids)


def _iso(value: datetime | str | None) -> str | None:
    """A datetime as ISO 8601 text; the API wants a time zone on each, so a naive one is
    refused here rather than as a 422. Text (already ISO) and None pass as they are."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        raise ValueError(
            f"{value} has no time zone; give one, e.g. datetime.now(UTC) + timedelta(days=30)"
        )
    return value.isoformat()


def _member_path(project_id: str, user: str) -> str:
    return f"/v1/projects/{quote(project_id, safe='')}/members/{quote(user, safe='')}"


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _check_deadline(deadline: float | None, sweep_id: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"sweep {sweep_id} has not ended in the time given")

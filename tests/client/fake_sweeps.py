"""A stand-in for the server's sweep routes (`httpx.MockTransport`), to test the SDK and the
CLI against the HTTP contract before the server implements it.

It answers POST/GET /v1/sweeps, GET /v1/sweeps/{id}, its events and cancel, and
GET /v1/experiments?sweep_id=; every request it gets is kept in `requests`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from memlab_client.cli import RUN_STATUSES

SWEEP_ID = "5e0b7a52-0000-4000-8000-000000000001"


def sweep_out(**fields: Any) -> dict[str, Any]:
    """A SweepOut of a 3-width x 2-seed grid, with `fields` replaced."""
    sweep: dict[str, Any] = {
        "id": SWEEP_ID,
        "name": None,
        "tags": [],
        "kind": "capacity_tradeoff",
        "method": "grid",
        "base": {"kind": "capacity_tradeoff", "task": "facts"},
        "axes": {"model.n_embd": [14, 28, 56]},
        "seeds": 2,
        "samples": None,
        "sampler_seed": 0,
        "batch": True,
        "n_runs": 6,
        "n_groups": 3,
        "status": "queued",
        "counts": counts(queued=6),
        "progress": 0.0,
        "cancel_requested": False,
        "created_at": "2025-06-01T12:00:00Z",
        "finished_at": None,
    }
    return {**sweep, **fields}


def counts(**by_status: int) -> dict[str, int]:
    """Counts per status, zero for those not given."""
    return {status: by_status.get(status, 0) for status in RUN_STATUSES}


def child(
    n_embd: int, seed: int, status: str = "succeeded", score: float | None = 0.5, **fields: Any
) -> dict[str, Any]:
    """One experiment of the sweep, at cell (model.n_embd, seed)."""
    result = None
    if score is not None and status == "succeeded":
        final = {"facts": score, "score": score}
        result = {"task": "facts", "n_parameters": 1000 * n_embd, "final": final}
    experiment: dict[str, Any] = {
        "id": f"e{n_embd:03d}{seed}-0000-4000-8000-000000000000",
        "kind": "capacity_tradeoff",
        "name": None,
        "tags": [],
        "status": status,
        "progress": 1.0 if status == "succeeded" else 0.0,
        "result": result,
        "error": None,
        "created_at": "2025-06-01T12:00:00Z",
        "sweep_id": SWEEP_ID,
        "sweep_cell": {"model.n_embd": n_embd, "seed": seed},
        "group_id": f"g{n_embd}",
        "batched": True,
    }
    return {**experiment, **fields}


def sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()


@dataclass
class FakeSweepServer:
    """The sweep routes of one sweep. POST answers `submitted` (or `submit_error`);
    `polls` are the answers to successive GETs of the sweep, the last one repeated;
    `events` is what its stream sends, after which the stream ends, or fails with a read
    error when `drop_stream` is set."""

    submitted: dict[str, Any] = field(default_factory=sweep_out)
    polls: list[dict[str, Any]] = field(default_factory=lambda: [sweep_out()])
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    drop_stream: bool = False
    children: list[dict[str, Any]] = field(default_factory=list)
    submit_error: tuple[int, dict[str, Any]] | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def http(self) -> httpx.Client:
        return httpx.Client(transport=self.transport(), base_url="http://memlab.test")

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        if path == "/v1/sweeps" and method == "POST":
            if self.submit_error:
                status, body = self.submit_error
                return httpx.Response(status, json=body)
            headers = {"Memlab-Submission": "created"}
            return httpx.Response(201, json=self.submitted, headers=headers)
        if path == "/v1/sweeps" and method == "GET":
            return httpx.Response(200, json=self._page([self.polls[-1]], request))
        if path == f"/v1/sweeps/{SWEEP_ID}" and method == "GET":
            answer = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
            return httpx.Response(200, json=answer)
        if path == f"/v1/sweeps/{SWEEP_ID}/events":
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=_Stream(self)
            )
        if path == f"/v1/sweeps/{SWEEP_ID}/cancel" and method == "POST":
            return httpx.Response(200, json=self.polls[-1])
        if path == "/v1/experiments" and request.url.params.get("sweep_id") == SWEEP_ID:
            return httpx.Response(200, json=self._page(self.children, request))
        message = f"{method} {path} not found"
        return httpx.Response(404, json={"error": {"code": "not_found", "message": message}})

    @staticmethod
    def _page(items: list[dict[str, Any]], request: httpx.Request) -> dict[str, Any]:
        limit = int(request.url.params.get("limit", 50))
        offset = int(request.url.params.get("offset", 0))
        page = items[offset : offset + limit]
        return {"items": page, "total": len(items), "limit": limit, "offset": offset}


class _Stream(httpx.SyncByteStream):
    """The events, one per chunk, then the end of the stream or a dropped connection."""

    def __init__(self, server: FakeSweepServer) -> None:
        self.server = server

    def __iter__(self) -> Iterator[bytes]:
        for event in self.server.events:
            yield sse([event])
        if self.server.drop_stream:
            raise httpx.ReadError("connection reset by peer")

"""Server-side settings, read from `MEMLAB_*` environment variables.

The defaults are the embedded mode: SQLite and a broker that needs no server, all under
one data folder. A shared lab server sets MEMLAB_DATABASE_URL (PostgreSQL) and
MEMLAB_BROKER_URL (Redis).
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API and the workers need to find the database, broker and artifacts."""

    model_config = SettingsConfigDict(env_prefix="MEMLAB_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="API keys: on, off, or auto: off when the API listens on loopback only "
        "(the embedded default), on otherwise and always in production.",
    )
    bind_host: str = Field(
        "127.0.0.1", description="The interface the API listens on (`memlab serve --host`)."
    )
    data_dir: Path = Field(Path.home() / ".memlab", description="Root of all embedded state.")
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite in data_dir.")
    broker_url: str = Field("", description="Celery broker URL; empty = SQLite broker in data_dir.")
    artifact_dir: Path | None = Field(
        None, description="Checkpoints and artifacts; None = data_dir/artifacts."
    )
    visibility_timeout_s: int = Field(
        48 * 3600, ge=60, description="Redis redelivery timeout; must exceed the longest run."
    )
    metrics_flush_interval_s: float = Field(2.0, gt=0, description="Worker metric batching.")
    events_poll_interval_s: float = Field(0.5, gt=0, description="SSE stream polling period.")
    cancel_check_interval_s: float = Field(1.0, gt=0, description="How often a run polls cancel.")
    torch_threads: int = Field(0, ge=0, description="torch threads per worker; 0 = torch default.")
    db_pool_size: int = Field(10, ge=1, description="Pooled database connections per process.")
    db_max_overflow: int = Field(30, ge=0, description="Extra connections allowed under load.")

    # Fault tolerance: heartbeats, the reaper, the redelivery cap.
    heartbeat_interval_s: float = Field(10.0, gt=0, description="How often a running run beats.")
    heartbeat_stale_s: float = Field(
        60.0, gt=0, description="A running run silent this long has lost its worker."
    )
    worker_stop_grace_s: float = Field(
        30.0,
        ge=0,
        description="When `memlab serve` stops, how long its worker may finish the current "
        "step before it is killed (the run resumes from its checkpoint on the next start).",
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts a run gets; losing its worker on the last one fails it."
    )
    reaper_interval_s: float = Field(
        15.0, gt=0, description="How often each reaper (API process or `memlab reaper`) runs."
    )
    redeliver_after_s: float = Field(
        600.0,
        gt=0,
        description="A run handed out and unclaimed this long, its queue empty, had its "
        "message lost (a Redis restart): the dispatcher hands it out again.",
    )
    db_retry_s: float = Field(
        300.0, ge=0, description="How long a worker keeps retrying a failed database write."
    )

    # Resource limits on what one request may ask for.
    max_wall_s: int = Field(7 * 24 * 3600, ge=1, description="Cap on a run's wall-time limit.")
    max_steps: int = Field(2_000_000, ge=1, description="Cap on train.steps.")
    max_batch_size: int = Field(8192, ge=1, description="Cap on train.batch_size.")
    max_parameters: int = Field(200_000_000, ge=1, description="Cap on model parameters.")
    max_dataset_items: int = Field(1_000_000, ge=1, description="Cap on generated data items.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Cap on a request body.")
    max_shadows: int = Field(
        64,
        ge=2,
        le=1000,  # a sweep's axis holds at most 1,000 values
        description="Cap on the shadow models one lira or counterfactual probe trains.",
    )

    # Dispatch: the one dispatcher hands queued runs to the broker (worker/fair_dispatch.py).
    dispatch_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the dispatcher looks for free worker slots (a submission to "
        "this process also wakes it at once).",
    )
    quota_runs_per_user: int = Field(
        0,
        ge=0,
        description="Runs one user may have running or handed out at once; 0 = no quota. "
        "Over any quota, runs wait queued, with the reason.",
    )
    quota_runs_per_project: int = Field(0, ge=0, description="The same per project.")
    quota_gpu_runs_per_user: int = Field(
        0,
        ge=0,
        description="Runs asking for GPUs that one user may have running or handed out at "
        "once; 0 = no quota.",
    )
    quota_gpu_runs_per_project: int = Field(0, ge=0, description="The same per project.")
    quota_gpu_hours_per_user: float = Field(
        0.0,
        ge=0,
        description="GPU-hours (GPUs asked for x hours run) one user's runs may use over "
        "the last 24 hours before the next GPU run waits; 0 = no quota.",
    )
    quota_gpu_hours_per_project: float = Field(0.0, ge=0, description="The same per project.")

    # The dashboard (api/dashboard)
    session_hours: float = Field(
        12,
        gt=0,
        le=720,
        description="How long a dashboard login lasts: the session key it issues expires "
        "then (or when the key logged in with does, if sooner).",
    )

    # Rate limits
    rate_limit_per_minute: int = Field(
        600,
        ge=0,
        description="Requests one API key may make per minute; 0 = no limit. Requests "
        "without a key (authentication off) are not limited.",
    )
    rate_limit_backend: Literal["auto", "memory", "redis"] = Field(
        "auto",
        description="Where requests are counted: auto = Redis in production, memory "
        "otherwise (one API process).",
    )
    rate_limit_redis_url: str = Field(
        "", description="Redis for the counts; empty = MEMLAB_BROKER_URL."
    )

    # Sweeps and the batched groups their children run in.
    max_sweep_runs: int = Field(1000, ge=1, description="Cap on the children of one sweep.")
    max_ensemble_members: int = Field(
        32, ge=1, description="Most experiments one batched group trains; 1 = never batch."
    )
    max_group_memory_mb: int = Field(
        4096,
        ge=1,
        description="A batched group's members' estimated training memory stays under this.",
    )

    @model_validator(mode="after")
    def _refuse_embedded_defaults_in_production(self) -> Settings:
        if self.environment == "production" and not (self.database_url and self.broker_url):
            raise ValueError(
                "MEMLAB_ENVIRONMENT=production needs MEMLAB_DATABASE_URL and MEMLAB_BROKER_URL; "
                "the embedded SQLite defaults are for a single machine"
            )
        if self.environment == "production" and self.auth == "off":
            raise ValueError(
                "MEMLAB_ENVIRONMENT=production refuses MEMLAB_AUTH=off: a shared server needs "
                "API keys (create the first admin with `memlab users add NAME --admin`)"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need an API key: `auth` on, or auto off loopback or in
        production."""
        if self.auth != "auto":
            return self.auth == "on"
        return self.environment == "production" or not _is_loopback(self.bind_host)

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'memlab.db'}"

    @cached_property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @cached_property
    def resolved_artifact_dir(self) -> Path:
        return self.artifact_dir or self.data_dir / "artifacts"

    def ensure_dirs(self) -> None:
        """Create the data and artifact folders the embedded defaults point into."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.resolved_artifact_dir.mkdir(parents=True, exist_ok=True)


def _is_loopback(host: str) -> bool:
    """Whether `host` (an address or name the API binds) is reachable from this machine only.

    >>> _is_loopback("127.0.0.1"), _is_loopback("localhost"), _is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

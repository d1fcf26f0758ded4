"""docker-compose.yml and the Prometheus example it mounts: they parse and agree with the
server (no Docker engine runs in CI, so this is what can be checked here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from store.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def test_the_compose_stack_is_a_production_server_with_keys_and_a_rate_limit() -> None:
    compose = _compose()
    environment = compose["x-memlab-env"]
    settings = Settings(**{k.removeprefix("MEMLAB_").lower(): v for k, v in environment.items()})
    assert settings.environment == "production" and settings.auth_enabled
    assert settings.rate_limit_per_minute > 0
    memlab_services = [
        s for s in compose["services"].values() if s.get("image", "").startswith("memlab")
    ]
    assert len(memlab_services) >= 4
    assert all(service["environment"] == environment for service in memlab_services)


def test_prometheus_scrapes_the_api_metrics_from_a_file_in_the_repository() -> None:
    prometheus = _compose()["services"]["prometheus"]
    source, target, _ = prometheus["volumes"][0].split(":")
    assert target == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((REPO / source).read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    api_port = _compose()["services"]["api"]["ports"][0].split(":")[1]
    assert job["static_configs"][0]["targets"] == [f"api:{api_port}"]

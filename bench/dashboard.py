"""How fast the dashboard draws, against an API it starts itself (the embedded stack, as
`scripts/serve` runs it, without a worker), in Debian's headless Chromium.

  1. first chart: a run with `--points` metric points (default 100,000: 4 series of
     25,000 steps). A page load navigates to /runs/ID and reads when the first chart was
     drawn (charts.js stamps data-drawn-at, in ms since navigation began): `--cold`
     loads each in a new browser (empty cache: plotly.js fetched and compiled), then
     `--loads` in one browser (cached).
     Beside it: GET …/metrics?max_points=2000, its size and p50, and the points it sends
     per series (at most 2,000).
  2. the list API over `--runs` finished runs (default 10,000): p50 and p99 of the
     experiments page's two requests, GET /v1/experiments?limit=50 (default order, and
     sorted by a result field) and GET /v1/experiments/facets.

    python bench/dashboard.py
    python bench/dashboard.py --points 1000000 --loads 5

It exits non-zero if the first chart's p50 takes more than 2 s (empty cache or cached)
or the list's p50 is over 100 ms: the issue's bounds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api_load import TINY_SPEC, embedded_api, percentile, print_machine, seed_rows
from store.db import make_engine, make_session_factory, transaction
from store.models import Run, RunStatus, RunType
from store.repository import write_metrics

SERIES = ("train/loss", "train/lr", "eval/score", "eval/held_out")
MAX_POINTS = 2000  # what the run page asks for per series (pages/run.js)
FIRST_CHART_BOUND_MS = 2000
LIST_P50_BOUND_MS = 100


def seed_run_with_points(database_url: str, points: int) -> uuid.UUID:
    """One succeeded run whose metrics are `points` points over the SERIES."""
    run_id = uuid.uuid4()
    steps = points // len(SERIES)
    sessions = make_session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        session.add(
            Run(
                id=run_id,
                run_type=RunType.experiment,
                kind="capacity_tradeoff",
                spec=TINY_SPEC,
                spec_hash="f" * 64,
                name="100k points",
                status=RunStatus.succeeded,
                queue="cpu",
                progress=1.0,
            )
        )
    for key in SERIES:
        with transaction(sessions) as session:
            write_metrics(
                session,
                run_id,
                ((step, key, 2.0 * (1 + step) ** -0.3) for step in range(1, steps + 1)),
            )
    return run_id


def open_browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install …)")
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(driver), options=options)


def first_chart_ms(browser: object, url: str) -> float:
    """Load `url` and return when its first chart was drawn, in ms since navigation."""
    from selenium.webdriver.common.by import By

    browser.get(url)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drawn = browser.find_elements(By.CSS_SELECTOR, ".chart[data-drawn-at]")  # type: ignore[attr-defined]
        if drawn:
            return min(float(e.get_attribute("data-drawn-at")) for e in drawn)
        time.sleep(0.01)
    raise TimeoutError(f"no chart drawn at {url}")


def chart_arm(url: str, run_id: uuid.UUID, points: int, cold_loads: int, loads: int) -> bool:
    metrics_url = f"/v1/experiments/{run_id}/metrics?max_points={MAX_POINTS}"
    timings = []
    with httpx.Client(base_url=url, timeout=60) as http:
        body = http.get(metrics_url)
        for _ in range(10):
            started = time.perf_counter()
            http.get(metrics_url).raise_for_status()
            timings.append(1000 * (time.perf_counter() - started))
    sent = {key: len(s["steps"]) for key, s in body.json()["series"].items()}
    page = f"{url}/runs/{run_id}"
    cold = []
    for _ in range(cold_loads):
        browser = open_browser()
        try:
            cold.append(first_chart_ms(browser, page))
        finally:
            browser.quit()  # type: ignore[attr-defined]
    browser = open_browser()
    try:
        first_chart_ms(browser, page)  # fills the cache
        warm = [first_chart_ms(browser, page) for _ in range(loads)]
    finally:
        browser.quit()  # type: ignore[attr-defined]
    print(f"\n## run page, {points:,} metric points in {len(SERIES)} series")
    size_kib, p50 = len(body.content) / 1024, statistics.median(timings)
    print(f"- metrics request: {size_kib:.0f} KiB, p50 {p50:.1f} ms")
    print(f"- points sent per series: {sorted(set(sent.values()))} (at most {MAX_POINTS})")
    print(
        f"- first chart, empty cache, {len(cold)} new browsers: p50 "
        f"{statistics.median(cold):.0f} ms, max {max(cold):.0f} ms after navigation"
    )
    print(
        f"- first chart, warm cache, {len(warm)} loads: p50 {statistics.median(warm):.0f} ms, "
        f"max {max(warm):.0f} ms (bound {FIRST_CHART_BOUND_MS} ms)"
    )
    slowest_p50 = max(statistics.median(cold), statistics.median(warm))
    return max(sent.values()) <= MAX_POINTS and slowest_p50 <= FIRST_CHART_BOUND_MS


LISTINGS = (
    ("experiments, newest first", "/v1/experiments", {"limit": 50}),
    (
        "experiments, sorted by a result field",
        "/v1/experiments",
        {"limit": 50, "sort": "-result.final.x"},
    ),
    ("facets", "/v1/experiments/facets", {}),
)


def list_arm(url: str, database_url: str, runs: int, requests: int) -> bool:
    seed_rows(database_url, runs)
    print(f"\n## list API over {runs:,} runs ({requests} requests each)")
    passed = True
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, path, params in LISTINGS:
            timings = []
            for _ in range(requests):
                started = time.perf_counter()
                http.get(path, params=params).raise_for_status()
                timings.append(1000 * (time.perf_counter() - started))
            p50 = statistics.median(timings)
            print(f"- {name}: p50 {p50:.1f} ms, p99 {percentile(timings, 0.99):.1f} ms")
            passed &= p50 <= LIST_P50_BOUND_MS
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--cold", type=int, default=3, help="Loads in a new browser each.")
    parser.add_argument("--loads", type=int, default=5, help="Loads in one browser, cached.")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--log-dir", default="/tmp/memlab-bench")
    args = parser.parse_args()
    logs = Path(args.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    print_machine()
    with embedded_api(logs) as (url, database_url):
        run_id = seed_run_with_points(database_url, args.points)
        fast_chart = chart_arm(url, run_id, args.points, args.cold, args.loads)
        fast_list = list_arm(url, database_url, args.runs, args.requests)
    if not (fast_chart and fast_list):
        sys.exit("over a bound: see above")


if __name__ == "__main__":
    main()

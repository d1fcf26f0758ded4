"""The dashboard in a real headless Chromium, against `memlab serve` with
MEMLAB_AUTH=on: log in with a key, load every page, submit a run from the generated form
and watch its curve grow, see a sweep's means with error bars and a probe's log-log ROC,
a 422 shown at its field, and another project's run kept out of sight."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import tiny_capacity_spec
from tests.dashboard.conftest import Dashboard
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_S = 90
# Planted canaries: 3 inserted once, 3 sixteen times, 3 never (as in
# tests/core/test_probes_on_trained_models.py), for the exposure probe's histogram.
CANARIES = {"length": 3, "insertions": [1, 16], "per_insertion": 3, "controls": 3}
PROBES = ("loss_mia", "exposure", "knowledge_capacity")


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def wait_css(browser: Any, selector: str, timeout_s: float = TIMEOUT_S) -> Any:
    return wait_for(lambda: (css(browser, selector) or [None])[0], timeout_s, selector)


def drawn_points(browser: Any, chart_id: str) -> int:
    """How many points Plotly drew in the chart (its data-drawn), 0 before it drew."""
    found = css(browser, f"#{chart_id}[data-drawn]")
    return int(found[0].get_attribute("data-drawn")) if found else 0


def plot_of(browser: Any, chart_id: str) -> dict[str, Any]:
    """The traces and layout Plotly holds for a chart element."""
    return dict(
        browser.execute_script(
            "const e = document.getElementById(arguments[0]);"
            "return {data: e.data, layout: e.layout};",
            chart_id,
        )
    )


def open_page(browser: Any, dashboard: Dashboard, path: str) -> None:
    """Load `path` and wait until its page has drawn (main[data-page])."""
    browser.get(dashboard.url + path)
    wait_css(browser, "main[data-page]")


def log_in(browser: Any, dashboard: Dashboard, user: str) -> None:
    """A fresh session for `user`, through the login page."""
    browser.get(dashboard.url + "/login")
    browser.delete_all_cookies()
    browser.get(dashboard.url + "/login")
    fill_in_the_key(browser, dashboard, user)


def fill_in_the_key(browser: Any, dashboard: Dashboard, user: str) -> None:
    field = wait_css(browser, "#api-key")
    field.send_keys(dashboard.keys[user])
    css(browser, "#login")[0].click()
    wait_for(lambda: user in css(browser, "#who")[0].text, TIMEOUT_S, f"{user} logged in")


def click_if_there(browser: Any, selector: str) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        found = css(browser, selector)
        if found:
            found[0].click()
        return bool(found)
    except StaleElementReferenceException:  # redrawn between the find and the click
        return False


def severe_console_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def wait_run(client: Any, path: str, timeout_s: float = 240) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(path).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    found: dict[str, Any] = wait_for(ended, timeout_s, path)
    return found


@pytest.fixture(scope="module")
def ada_data(dashboard: Dashboard) -> dict[str, str]:
    """ada's finished run with a membership probe, her finished sweep of 2×2 cells over
    3 seeds, and a run of a kind that reports theory beside its measurement."""
    from core.catalog import all_kinds

    theory_spec = {
        "kind": "memorization_tradeoff",
        **all_kinds()["memorization_tradeoff"].spec_class.smoke_fields,
    }
    with dashboard.client("ada") as client:
        theory = client.post("/v1/experiments", json={"spec": theory_spec}).json()
        spec = tiny_capacity_spec(
            task="facts",
            n_facts=24,
            canaries=CANARIES,
            probes=[{"kind": kind} for kind in PROBES],
            train={"steps": 120},
        )
        run = client.post("/v1/experiments", json={"spec": spec, "name": "ada's run"}).json()
        sweep = client.post(
            "/v1/sweeps",
            json={
                "base": tiny_capacity_spec(train={"steps": 120}),
                "axes": {"model.n_embd": [8, 16], "train.lr": [0.003, 0.01]},
                "seeds": 3,
                "name": "width × lr",
            },
        ).json()
        wait_run(client, f"/v1/experiments/{run['id']}")
        probes = wait_for(
            lambda: client.get("/v1/probes", params={"experiment_id": run["id"]}).json()["items"],
            TIMEOUT_S,
            "the run's probes",
        )
        for probe in probes:
            assert wait_run(client, f"/v1/probes/{probe['id']}")["status"] == "succeeded"
        wait_run(client, f"/v1/sweeps/{sweep['id']}")
        wait_run(client, f"/v1/experiments/{theory['id']}")
    by_kind = {probe["kind"]: probe["id"] for probe in probes}
    assert set(by_kind) == set(PROBES)
    return {
        "run": run["id"],
        **by_kind,
        "sweep": sweep["id"],
        "theory": theory["id"],
    }


def test_a_logged_in_user_can_load_every_page(
    browser: Any, dashboard: Dashboard, ada_data: dict[str, str], screenshot: Callable[[str], Any]
) -> None:
    browser.delete_all_cookies()
    open_page(browser, dashboard, "/experiments")
    assert browser.current_url.startswith(f"{dashboard.url}/login?next=")  # a key first
    fill_in_the_key(browser, dashboard, "ada")
    assert "/experiments" in browser.current_url  # back where it was going
    pages = {
        "/experiments": "#experiments",
        "/sweeps": "#sweeps",
        "/probes": "#probe-list",
        f"/compare?ids={ada_data['run']}": "#spec-diff",
        "/submit": "#submit-form",
        "/workers": "#queues",
        f"/runs/{ada_data['run']}": "#chart-train[data-drawn]",
        f"/sweeps/{ada_data['sweep']}": "#sweep-plot[data-drawn]",
        f"/probes/{ada_data['loss_mia']}": "#roc[data-drawn]",
        f"/probes/{ada_data['exposure']}": "#exposure[data-drawn]",
        f"/probes/{ada_data['knowledge_capacity']}": "#capacity[data-drawn]",
    }
    browser.get_log("browser")  # drop what the login page logged
    for path, drawn in pages.items():
        open_page(browser, dashboard, path)
        wait_css(browser, drawn)
        assert not css(browser, ".banner-error"), (path, css(browser, ".banner-error")[0].text)
        assert severe_console_errors(browser) == [], path

    # Exposure: a histogram per insertion count; knowledge: bits against parameters
    # beside the 2 bits/parameter line.
    open_page(browser, dashboard, f"/probes/{ada_data['exposure']}")
    histograms = plot_of(browser, wait_css(browser, "#exposure[data-drawn]").get_attribute("id"))
    assert sorted(t["name"] for t in histograms["data"]) == [
        "inserted 16×",
        "inserted 1×",
        "never inserted (controls)",
    ]
    open_page(browser, dashboard, f"/probes/{ada_data['knowledge_capacity']}")
    wait_css(browser, "#capacity[data-drawn]")
    capacity = plot_of(browser, "capacity")
    assert capacity["layout"]["xaxis"]["type"] == "log"
    assert any("2 bits/parameter" in t["name"] for t in capacity["data"])

    # Compare: a chart per metric, a line per run, named by the run.
    open_page(browser, dashboard, f"/compare?ids={ada_data['run']},{ada_data['theory']}")
    wait_css(browser, "#compare-train_loss[data-drawn]")
    assert [t["name"] for t in plot_of(browser, "compare-train_loss")["data"]] == ["ada's run"]

    # Measurement and theory on the same axes.
    open_page(browser, dashboard, f"/runs/{ada_data['theory']}")
    chart = wait_css(browser, "#theory .chart[data-drawn]")
    names = [t["name"] for t in plot_of(browser, chart.get_attribute("id"))["data"]]
    assert any("(theory)" in n for n in names) and any("(measured" in n for n in names)

    # Columns for spec and result fields, sorted by the server.
    loss = "result.training.final_train_loss"
    columns = f"spec.model.n_embd,spec.train.lr,{loss}"
    # The fixture's runs only (other tests of the module add their own).
    where = quote(f'id = "{ada_data["run"]}" or sweep_id = "{ada_data["sweep"]}"')
    open_page(
        browser,
        dashboard,
        f"/experiments?kind=capacity_tradeoff&where={where}&cols={columns}&sort=-{loss}",
    )
    rows = css(browser, "#experiments tbody tr")
    assert len(rows) == 13  # the probed run and the sweep's 12 children
    losses = [float(r.find_elements("css selector", "td")[-1].text) for r in rows]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) > 1
    facets = {f.get_attribute("data-facet") for f in css(browser, "[data-facet]")}
    assert {"status=succeeded", "kind=capacity_tradeoff"} <= facets
    screenshot("experiments")


def test_a_run_submitted_from_the_form_shows_its_curve_growing(
    browser: Any, dashboard: Dashboard, screenshot: Callable[[str], Any]
) -> None:
    log_in(browser, dashboard, "ada")
    open_page(browser, dashboard, "/submit?kind=capacity_tradeoff")
    steps = wait_css(browser, "#field-train-steps")
    assert steps.get_attribute("value") == "30000"  # the kind's default, filled in
    steps.clear()
    steps.send_keys("20000")
    css(browser, "#run-name")[0].send_keys("from the form")
    css(browser, "#submit")[0].click()
    wait_for(lambda: "/runs/" in browser.current_url, TIMEOUT_S, "the run's page")
    run_id = browser.current_url.rsplit("/", 1)[1]
    first = wait_for(lambda: drawn_points(browser, "chart-train"), TIMEOUT_S, "a first curve")
    grown = wait_for(
        lambda: drawn_points(browser, "chart-train") > first, TIMEOUT_S, "the curve to grow"
    )
    assert grown
    screenshot("run")
    with dashboard.client("ada") as client:
        run = client.get(f"/v1/experiments/{run_id}").json()
        # What the form sent: the one field changed, the rest the server's defaults.
        assert run["name"] == "from the form"
        assert run["spec"]["train"]["steps"] == 20000
        assert (
            run["spec"]["model"]
            == client.get("/v1/kinds/capacity_tradeoff").json()["default_spec"]["model"]
        )
    # Cancel from the page (through the cookie, with its CSRF token). The summary is drawn
    # again on each refresh, so the button is found afresh until a click lands.
    wait_for(lambda: click_if_there(browser, "#cancel"), TIMEOUT_S, "a click on Cancel")
    wait_css(browser, '#run-summary [data-status="cancelled"]')


def test_a_sweep_page_plots_means_with_error_bars(
    browser: Any, dashboard: Dashboard, ada_data: dict[str, str], screenshot: Callable[[str], Any]
) -> None:
    log_in(browser, dashboard, "ada")
    metric = "training.final_train_loss"
    open_page(browser, dashboard, f"/sweeps/{ada_data['sweep']}?metric={metric}")
    wait_css(browser, "#sweep-plot[data-drawn]")
    wait_css(browser, "#sweep-heatmap[data-drawn]")
    plot = plot_of(browser, "sweep-plot")
    traces = plot["data"]
    # One line per learning rate, each over the two widths, with 95% intervals.
    assert sorted(t["name"] for t in traces) == ["train.lr = 0.003", "train.lr = 0.01"]
    with dashboard.client("ada") as client:
        table = client.get(f"/v1/sweeps/{ada_data['sweep']}/table").json()
    assert css(browser, "#metric")[0].get_attribute("value") == metric
    for trace in traces:
        lr = float(trace["name"].split(" = ")[1])
        assert trace["x"] == [8, 16]
        for width, mean, up in zip(trace["x"], trace["y"], trace["error_y"]["array"], strict=True):
            (row,) = [
                r for r in table["rows"] if r["cell"] == {"model.n_embd": width, "train.lr": lr}
            ]
            value = row["values"][metric]
            assert value["n"] == 3
            assert mean == pytest.approx(value["mean"])
            assert up == pytest.approx(value["ci95_high"] - value["mean"])
    assert plot["layout"]["title"]["text"].endswith("mean and 95% interval over seeds")
    time.sleep(0.5)  # let Plotly finish its transitions before the picture
    screenshot("sweep")


def test_a_probe_page_shows_a_log_log_roc_with_the_blind_baseline(
    browser: Any, dashboard: Dashboard, ada_data: dict[str, str], screenshot: Callable[[str], Any]
) -> None:
    log_in(browser, dashboard, "ada")
    open_page(browser, dashboard, f"/probes/{ada_data['loss_mia']}")
    wait_css(browser, "#roc[data-drawn]")
    plot = plot_of(browser, "roc")
    assert plot["layout"]["xaxis"]["type"] == "log" and plot["layout"]["yaxis"]["type"] == "log"
    names = [t["name"] for t in plot["data"]]
    assert any(n.startswith("attack") for n in names)
    assert any(n.startswith("blind_baseline") for n in names)
    table = css(browser, "#attack-table")[0].text
    assert "AUC" in table and "95% interval" in table and "TPR @ 1% FPR" in table
    screenshot("probe")


def test_a_422_is_shown_at_its_field(browser: Any, dashboard: Dashboard) -> None:
    log_in(browser, dashboard, "ada")
    open_page(browser, dashboard, "/submit?kind=capacity_tradeoff")
    steps = wait_css(browser, "#field-train-steps")
    steps.clear()
    steps.send_keys("0")
    css(browser, "#submit")[0].click()
    error = wait_css(browser, '.field.invalid[data-path="train.steps"] .field-error')
    assert "greater than" in error.text.lower() or "≥" in error.text or ">=" in error.text
    assert "/submit" in browser.current_url  # nothing was submitted
    assert len(css(browser, ".field.invalid")) == 1


def test_a_sweep_submitted_from_the_form_runs_its_grid_and_can_be_cancelled(
    browser: Any, dashboard: Dashboard
) -> None:
    log_in(browser, dashboard, "ada")
    open_page(browser, dashboard, "/submit?kind=capacity_tradeoff&mode=sweep")
    steps = wait_css(browser, "#field-train-steps")
    steps.clear()
    steps.send_keys("20000")  # long: it is cancelled below
    from selenium.webdriver.support.ui import Select

    Select(css(browser, ".axis-path")[0]).select_by_value("model.n_embd")
    css(browser, ".axis-values")[0].send_keys("8, 16")
    seeds = css(browser, "#seeds")[0]
    seeds.clear()
    seeds.send_keys("2")
    css(browser, "#submit")[0].click()
    wait_for(lambda: "/sweeps/" in browser.current_url, TIMEOUT_S, "the sweep's page")
    sweep_id = browser.current_url.rsplit("/", 1)[1]
    with dashboard.client("ada") as client:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["axes"] == {"model.n_embd": [8, 16]} and sweep["seeds"] == [0, 1]
    assert sweep["n_runs"] == 4 and sweep["base"]["train"] == {"steps": 20000}
    wait_for(lambda: click_if_there(browser, "#cancel"), TIMEOUT_S, "a click on Cancel sweep")
    wait_css(browser, '#sweep-summary [data-status="cancelled"]')


def test_the_form_keeps_a_null_that_means_something(
    browser: Any, dashboard: Dashboard, ada_data: dict[str, str]
) -> None:
    """lira's fixed_variance is true, false or null (decide from the number of shadow
    models): a checkbox would send false. It is a three-way choice, left at null."""
    log_in(browser, dashboard, "ada")
    open_page(browser, dashboard, f"/submit?probe_of={ada_data['run']}&kind=lira")
    choice = wait_css(browser, "#field-fixed_variance")
    assert choice.tag_name == "select"
    assert choice.get_attribute("value") == "null"


def test_a_user_cannot_open_another_projects_run_page(
    browser: Any, dashboard: Dashboard, ada_data: dict[str, str]
) -> None:
    log_in(browser, dashboard, "bob")
    open_page(browser, dashboard, f"/runs/{ada_data['run']}")
    banner = wait_css(browser, ".banner-error")
    assert "not found" in banner.text
    assert not css(browser, "#run-summary")
    assert "ada's run" not in browser.find_element("id", "page").text
    open_page(browser, dashboard, "/experiments")
    assert css(browser, "#experiments tbody tr") == []  # bob's list holds none of ada's

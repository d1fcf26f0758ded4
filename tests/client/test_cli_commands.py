"""What the `memlab` commands show, run against the real API app in this process."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from rich.console import Console
from typer.testing import Result

import memlab_client.cli as cli
from core.catalog import all_kinds
from memlab_client.sdk import MemlabClient, MemlabError
from tests.client.conftest import ThreadWorker
from tests.conftest import tiny_capacity_spec

RunCli = Callable[..., Result]


def test_submit_wait_follows_the_probes_the_spec_lists_and_shows_each_headline(
    worker: ThreadWorker, run_cli: RunCli, sdk: MemlabClient
) -> None:
    probes = [{"kind": "loss_mia"}, {"kind": "exact_recall"}]
    spec = tiny_capacity_spec(task="facts", probes=probes)
    result = run_cli(
        "submit",
        "--kind",
        "capacity_tradeoff",
        "--set",
        f"task={spec['task']}",
        "--set",
        f"train={json.dumps(spec['train'])}",
        "--set",
        f"probes={json.dumps(probes)}",
        "--wait",
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    experiment_id = sdk.list()["items"][0]["id"]
    found = {p["kind"]: p for p in sdk.list_probes(experiment_id)["items"]}
    assert {p["status"] for p in found.values()} == {"succeeded"}
    assert f"probes of {experiment_id}" in result.stdout
    attack = found["loss_mia"]["result"]["attack"]
    blind = found["loss_mia"]["result"]["blind_baseline"]
    low, high = attack["auc_ci95"]
    # A membership probe: the attack's AUC with its interval, beside the blind baseline.
    assert (
        f"AUC {attack['auc']:.3f} [{low:.3f}, {high:.3f}] · blind baseline {blind['auc']:.3f}"
        in result.stdout
    )
    # Any other probe: its result's top-level numbers.
    recall = found["exact_recall"]["result"]
    assert f"accuracy {recall['accuracy']:.4g} · n_items {recall['n_items']}" in result.stdout


def test_submit_wait_without_probes_shows_only_the_experiment(
    worker: ThreadWorker, run_cli: RunCli
) -> None:
    train = json.dumps(tiny_capacity_spec()["train"])
    result = run_cli(
        "submit",
        "--kind",
        "capacity_tradeoff",
        "-s",
        "task=facts",
        "-s",
        f"train={train}",
        "--wait",
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout and "probes of" not in result.stdout


def test_headline_of_a_result_with_no_known_shape_lists_its_top_level_numbers() -> None:
    result = {"probe": "x", "bits": 12.5, "n_facts": 50, "resolved": True, "nested": {"a": 1}}
    assert cli._headline(result) == "bits 12.5 · n_facts 50"


def test_kinds_name_shows_fields_with_type_default_and_description_and_the_default_spec(
    run_cli: RunCli, sdk: MemlabClient
) -> None:
    kind = all_kinds()["capacity_tradeoff"]
    served = {k["name"]: k for k in sdk.kinds()}["capacity_tradeoff"]
    default_spec = served["default_spec"]
    result = run_cli("kinds", "capacity_tradeoff")
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    seed_description = kind.spec_class.model_fields["seed"].description
    assert f"seed integer [0, 2147483647] 0 {seed_description}" in lines
    task_description = kind.spec_class.model_fields["task"].description
    assert f'task arithmetic | facts | joint "arithmetic" {task_description}' in lines
    # Nested fields by the dotted name `--set` takes, with this kind's own defaults.
    steps = next(line for line in lines if line.startswith("train.steps "))
    assert (
        steps.startswith("train.steps integer [1, ")
        and f" {default_spec['train']['steps']}" in steps
    )
    assert any(line.startswith("model.n_embd integer") for line in lines)
    json_start = result.stdout.index("{", result.stdout.index("default spec"))
    assert json.loads(result.stdout[json_start:]) == default_spec


def test_schema_fields_recurse_into_optional_models_and_keep_unions_whole() -> None:
    schema = {
        "properties": {
            "canaries": {"anyOf": [{"$ref": "#/$defs/C"}, {"type": "null"}], "default": None},
            "mixer": {"oneOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}]},
            "p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5},
        },
        "$defs": {
            "C": {"title": "C", "properties": {"length": {"type": "integer", "default": 5}}},
            "A": {"title": "A", "properties": {}},
            "B": {"title": "B", "properties": {}},
        },
    }
    assert cli.schema_fields(schema, {"p": 0.25}) == [
        ("canaries", "C | null", "null", ""),
        ("canaries.length", "integer", "5", ""),
        ("mixer", "A | B", "(required)", ""),
        ("p", "number (0, 1]", "0.25", ""),
    ]


def test_kinds_lists_every_kind_and_an_unknown_name_lists_the_known_ones(
    run_cli: RunCli,
) -> None:
    listed = run_cli("kinds")
    assert listed.exit_code == 0
    assert all(name in listed.stdout for name in all_kinds())
    unknown = run_cli("kinds", "capacity_tradeof")
    assert unknown.exit_code == 1
    assert unknown.stdout == ""
    assert unknown.stderr.strip() == (
        f"error: unknown kind 'capacity_tradeof'; known kinds: {', '.join(all_kinds())}"
    )


def test_ls_shows_each_experiments_name(run_cli: RunCli, sdk: MemlabClient) -> None:
    named = sdk.submit(tiny_capacity_spec(), name="lr-sweep-3e-3", tags=["sweep"])
    unnamed = sdk.submit(tiny_capacity_spec(seed=1))
    piped = run_cli("ls").stdout.splitlines()  # not a terminal: tab-separated fields
    assert piped[0].split("\t")[:3] == [unnamed["id"], "capacity_tradeoff", ""]
    assert piped[1].split("\t")[:3] == [named["id"], "capacity_tradeoff", "lr-sweep-3e-3"]


def test_ls_in_a_narrow_terminal_keeps_the_whole_id_and_name(
    run_cli: RunCli, sdk: MemlabClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = sdk.submit(tiny_capacity_spec(), name="lr-sweep-3e-3", tags=["sweep"])
    terminal = Console(width=80, force_terminal=True, color_system=None, record=True)
    monkeypatch.setattr(cli, "console", terminal)
    assert run_cli("ls").exit_code == 0
    text = terminal.export_text()
    row = next(line for line in text.splitlines() if named["id"] in line)
    assert "lr-sweep-3e-3" in row and "queued" in row
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "hidden to fit the terminal" in text


def test_fit_columns_drops_tags_then_created_then_progress_then_kind() -> None:
    row = {
        "id": "0" * 36,
        "name": "a-name",
        "kind": "capacity_tradeoff",
        "status": "succeeded",
        "progress": "100%",
        "created": "2025-01-01 00:00",
        "tags": "sweep,first",
    }
    assert cli.fit_columns([row], 200) == list(cli.LS_COLUMNS)
    assert cli.fit_columns([row], 100) == ["id", "name", "kind", "status", "progress"]
    assert cli.fit_columns([row], 60) == ["id", "name", "status"]


def test_a_validation_error_is_printed_once_with_each_field_path(run_cli: RunCli) -> None:
    result = run_cli(
        "submit", "--kind", "capacity_tradeoff", "--set", "train.stepz=10", "--set", "seed=-1"
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: HTTP 422 validation_error: invalid request"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "spec.seed",
        "spec.train.stepz",
    ]
    assert result.stderr.count("spec.train.stepz") == 1


def test_an_error_without_details_is_printed_once(run_cli: RunCli) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    result = run_cli("show", missing)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: HTTP 404 not_found: experiment {missing} not found"


def test_the_error_headline_drops_only_the_servers_summary_of_its_details() -> None:
    details = [{"path": "spec.train.lr", "message": "too big", "type": "x"}]
    summarised = {
        "error": {"code": "c", "message": "bad: spec.train.lr: too big", "details": details}
    }
    assert MemlabError(422, summarised).headline == "bad"
    plain = {"error": {"code": "c", "message": "a message of its own", "details": details}}
    assert MemlabError(422, plain).headline == "a message of its own"
    assert str(MemlabError(422, summarised)) == "HTTP 422: bad: spec.train.lr: too big"


def test_a_nan_value_is_refused_by_the_server_naming_its_field(run_cli: RunCli) -> None:
    result = run_cli("submit", "--kind", "capacity_tradeoff", "--set", "train.lr=NaN")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: HTTP 422 ")
    assert "  spec.train.lr: " in result.stderr


def test_probe_wait_on_a_shadow_probe_says_where_its_shadows_train_and_shows_the_attack(
    worker: ThreadWorker, run_cli: RunCli, sdk: MemlabClient
) -> None:
    spec = {
        "kind": "associative_recall",
        "vocab_size": 16,
        "seq_len": 16,
        "num_kv_pairs": 2,
        "train_examples": 32,
        "test_examples": 32,
        "model": {"n_layer": 1, "width": 16},
        "train": {"steps": 10, "batch_size": 16, "eval_every": 10, "device": "cpu"},
    }
    target = sdk.wait(sdk.submit(spec)["id"])
    assert target["status"] == "succeeded", target["error"]
    result = run_cli(
        "probe", target["id"], "lira", "-p", "shadows=4", "-p", "bootstrap_rounds=20", "--wait"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    probe = sdk.list_probes(target["id"])["items"][0]
    assert f"shadow models have trained: sweep {probe['shadow_sweep_id']}" in result.stdout
    auc_row = next(line for line in result.stdout.splitlines() if "result.attack.auc " in line)
    assert f"{probe['result']['attack']['auc']:.4g}" in auc_row
    assert sdk.get_sweep(probe["shadow_sweep_id"])["counts"]["succeeded"] == 4

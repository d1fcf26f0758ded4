"""How `memlab submit` turns a file, --kind and --set into a request body."""

import json
from pathlib import Path

import pytest
import typer

from memlab_client.cli import _load_request


def test_set_parses_json_values_into_nested_fields() -> None:
    body = _load_request(
        None,
        "capacity_tradeoff",
        ["train.steps=500", "model.bias=true", "task=facts", "held_out=[]"],
    )
    assert body == {
        "spec": {
            "kind": "capacity_tradeoff",
            "train": {"steps": 500},
            "model": {"bias": True},
            "task": "facts",
            "held_out": [],
        }
    }


def test_a_file_may_hold_a_bare_spec_or_a_whole_request(tmp_path: Path) -> None:
    bare = tmp_path / "spec.json"
    bare.write_text(json.dumps({"kind": "capacity_tradeoff", "seed": 3}))
    whole = tmp_path / "request.json"
    whole.write_text(json.dumps({"spec": {"kind": "capacity_tradeoff"}, "tags": ["a"]}))
    assert _load_request(str(bare), None, ["seed=4"]) == {
        "spec": {"kind": "capacity_tradeoff", "seed": 4}
    }
    assert _load_request(str(whole), None, [])["tags"] == ["a"]


@pytest.mark.parametrize(
    ("file_text", "kind", "overrides", "message"),
    [
        (None, None, [], "give a spec FILE or --kind"),
        ("{oops", None, [], "not valid JSON"),
        ("[1, 2]", None, [], "must hold a JSON object"),
        (None, "capacity_tradeoff", ["steps"], "expects key=value"),
        (None, "capacity_tradeoff", ["task=facts", "task.x=1"], "'task' is not an object"),
    ],
)
def test_mistakes_get_messages_a_person_can_act_on(
    tmp_path: Path, file_text: str | None, kind: str | None, overrides: list[str], message: str
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "spec.json"
        path.write_text(file_text)
    with pytest.raises(typer.BadParameter, match=message):
        _load_request(str(path) if path else None, kind, overrides)


def test_set_file_puts_a_files_text_into_a_spec_field(tmp_path: Path) -> None:
    upload = tmp_path / "graph.tsv"
    upload.write_text("aspirin\tmay_treat\tpain\n123\tis_a\t456\n")
    body = _load_request(
        None, "kg_memorization", ["triplets.format=tsv"], [f"triplets.content={upload}"]
    )
    # Kept as the file's exact text, even where it would parse as JSON.
    assert body["spec"]["triplets"] == {"format": "tsv", "content": upload.read_text()}
    with pytest.raises(typer.BadParameter, match="cannot read"):
        _load_request(None, "kg_memorization", [], [f"triplets.content={tmp_path / 'nope'}"])


def test_nan_and_infinity_stay_strings_so_the_request_can_be_sent() -> None:
    body = _load_request(None, "capacity_tradeoff", ["train.lr=NaN", "train.min_lr=-Infinity"])
    assert body["spec"]["train"] == {"lr": "NaN", "min_lr": "-Infinity"}
    json.dumps(body, allow_nan=False)  # what httpx does with it

"""`memlab worker --gpus`: one single-process node per GPU, each seeing only its own."""

from __future__ import annotations

import pytest

from worker.launch import parse_gpus, per_gpu_nodes
from worker.registry import DEVICES_ENV


@pytest.mark.parametrize("text", ["", "a", "0,0", "0,-1", "1.5"])
def test_gpus_are_distinct_indices(text: str) -> None:
    with pytest.raises(ValueError, match="distinct GPU indices"):
        parse_gpus(text)


def test_each_node_sees_one_gpu_and_declares_its_own_device() -> None:
    nodes = per_gpu_nodes(["0", "3"], "gpu", "box", "H100:80,A10:24")
    names = [command[command.index("--hostname") + 1] for command, _ in nodes]
    assert names == ["box-gpu0@%h", "box-gpu3@%h"]
    assert [command[command.index("--concurrency") + 1] for command, _ in nodes] == ["1", "1"]
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in nodes] == ["0", "3"]
    assert [env[DEVICES_ENV] for _, env in nodes] == ["H100:80", "A10:24"]
    assert DEVICES_ENV not in per_gpu_nodes(["0"], "gpu", "box", None)[0][1]
    with pytest.raises(ValueError, match="declares 1 devices for 2 GPUs"):
        per_gpu_nodes(["0", "1"], "gpu", "box", "H100:80")

"""The contract of kinds that compute without training, and the registry's refusal of
kinds that miss a piece of the contract, checked on small example kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from core.registry import KindContractError, register_kind, registered_kinds
from core.reporter import InMemoryReporter, Reporter
from core.specs import ExperimentSpec, TrainedSpec, TrainSpec
from tests.core.example_computed_kind import EXAMPLE_KIND, registered_example_kind
from tests.core.test_kind_contract import check_computed_kind


def test_the_example_computed_kind_keeps_the_contract(tmp_path: Path) -> None:
    with registered_example_kind() as kind:
        assert not kind.trains
        check_computed_kind(kind, tmp_path)
        result = kind.run(kind.spec_class.smoke_spec(), InMemoryReporter(directory=tmp_path))
        # 20,000 samples: the estimate is within 4 standard errors of π.
        assert abs(result["pi"] - 3.14159) < 4 * result["standard_error"]
    assert EXAMPLE_KIND not in registered_kinds()


def test_the_contract_check_fails_a_computed_kind_that_ignores_a_stop(tmp_path: Path) -> None:
    with registered_example_kind() as kind:
        deaf = type(kind)(kind.name, kind.description, kind.spec_class, _ignores_stop)
        with pytest.raises(pytest.fail.Exception):
            check_computed_kind(deaf, tmp_path)


def _ignores_stop(spec: Any, reporter: Reporter) -> dict[str, Any]:
    reporter.progress(1.0, "done")
    return {"value": 1}


def _noop_run(spec: Any, reporter: Reporter) -> dict[str, Any]:
    return {}


class _BareSpec(ExperimentSpec):
    kind: Literal["example_bare"] = "example_bare"
    smoke_fields: ClassVar[dict[str, Any]] = {"seed": 1}


class _SilentTrainedSpec(TrainedSpec):
    """Trains but never says how big its model is: the parameter cap would pass at 0."""

    kind: Literal["example_silent"] = "example_silent"
    train: TrainSpec = TrainSpec()
    smoke_fields: ClassVar[dict[str, Any]] = {"seed": 1}

    def dataset_items(self) -> int:
        return 1


def test_a_kind_that_is_neither_trained_nor_computed_is_refused() -> None:
    with pytest.raises(KindContractError, match=r"TrainedSpec .* or ComputedSpec"):
        register_kind(_BareSpec, "bare")(_noop_run)
    assert "example_bare" not in registered_kinds()


def test_a_trained_kind_without_a_parameter_count_or_build_is_refused() -> None:
    with pytest.raises(KindContractError, match="parameter_count"):
        register_kind(_SilentTrainedSpec, "silent")(_noop_run)
    assert "example_silent" not in registered_kinds()

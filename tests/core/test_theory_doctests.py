"""The worked examples in the theory modules' docstrings (closed forms evaluated at the
papers' or the research notes' numbers) hold: each module under core/theory/ runs as a
doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import core.theory

MODULES = sorted(module.name for module in pkgutil.iter_modules(core.theory.__path__))


def test_there_are_theory_modules_to_check() -> None:
    assert {"marchenko_pastur", "hermite"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_worked_examples_in_a_theory_module_hold(name: str) -> None:
    module = importlib.import_module(f"core.theory.{name}")
    assert doctest.testmod(module).failed == 0

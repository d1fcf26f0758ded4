"""Single-digit arithmetic problems as fixed-width text lines (`<a+b=c>` / `<a-b=c>`).

A problem a ∘ b with a, b ∈ 0..9 and ∘ ∈ {+, −} is the line `<a∘b=c>`, padded with
spaces to `LINE_WIDTH` characters and ended by a newline; its key `a∘b` names it and its
prompt `<a∘b=` is what a model completes.

Example:
    >>> problem = ArithmeticProblem(1, "-", 4)
    >>> problem.key, problem.prompt, problem.line
    ('1-4', '<1-4=', '<1-4=-3>\\n')
    >>> ArithmeticProblem(5, "+", 5).line
    '<5+5=10>\\n'
    >>> len(arithmetic_problems()), bool(PROBLEM_KEY.match("7+5"))
    (200, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

LINE_WIDTH = 8  # characters before the newline
PROBLEM_KEY = re.compile(r"^[0-9][+-][0-9]$")  # a problem's key: 'a+b' or 'a-b'


@dataclass(frozen=True)
class ArithmeticProblem:
    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def key(self) -> str:
        return f"{self.a}{self.op}{self.b}"

    @property
    def prompt(self) -> str:
        return f"<{self.key}="

    @property
    def line(self) -> str:
        return f"{self.prompt}{self.answer}>".ljust(LINE_WIDTH) + "\n"


def arithmetic_problems() -> list[ArithmeticProblem]:
    """All 200 problems: a, b ∈ 0..9 for + and −, additions first."""
    return [ArithmeticProblem(a, op, b) for op in "+-" for a in range(10) for b in range(10)]


@cache
def arithmetic_characters() -> frozenset[str]:
    """Every character the problems' lines hold."""
    return frozenset("".join(problem.line for problem in arithmetic_problems()))

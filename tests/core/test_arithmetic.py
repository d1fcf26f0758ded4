"""The arithmetic problems are every single-digit sum and difference, as fixed-width lines."""

import doctest

import core.data.arithmetic
from core.data.arithmetic import LINE_WIDTH, PROBLEM_KEY, ArithmeticProblem, arithmetic_problems


def test_there_are_200_distinct_problems_with_their_exact_answers() -> None:
    problems = arithmetic_problems()
    assert len({p.key for p in problems}) == 200
    for p in problems:
        a, b = p.a, p.b
        assert p.answer == (a + b if p.op == "+" else a - b)
        assert 0 <= a <= 9 and 0 <= b <= 9


def test_every_line_is_its_prompt_answer_and_padding_to_a_fixed_width() -> None:
    for p in arithmetic_problems():
        assert len(p.line) == LINE_WIDTH + 1 and p.line.endswith("\n")
        assert p.line.rstrip() == f"{p.prompt}{p.answer}>"
        assert PROBLEM_KEY.match(p.key)
    assert ArithmeticProblem(0, "-", 9).line == "<0-9=-9>\n"  # the widest line fills it


def test_keys_other_than_single_digit_sums_and_differences_are_not_problems() -> None:
    for text in ("5*7", "12+1", "5+", "+5+5", "5 + 7"):
        assert not PROBLEM_KEY.match(text)


def test_the_docstring_example_holds() -> None:
    assert doctest.testmod(core.data.arithmetic).failed == 0

"""Fixtures shared by the tests."""
import pytest

from solved import solution_answers


@pytest.fixture
def answers01() -> dict:
    return solution_answers("01")

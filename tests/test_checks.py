"""Every exercise check passes the solution, fails each deliberately wrong answer, and calls an
untouched stub "not attempted".

The wrong answers (mutants) of lesson NN live in tests/test_checks_NN.py as ``MUTANTS``, an
exercise id → {mistake: wrong answer} table, beside the tests of that lesson's messages.
"""
import importlib
import pathlib

import pytest

from solved import exercise_ids, not_implemented, solution_answer
from utils import checks

SEEDS = [0, 1, 2]
MIN_MUTANTS = 3
EXERCISES = exercise_ids()
MUTANTS = {}
for module in sorted(pathlib.Path(__file__).parent.glob("test_checks_[0-9][0-9].py")):
    MUTANTS.update(importlib.import_module(module.stem).MUTANTS)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_every_exercise_has_enough_wrong_answers(exercise):
    assert len(MUTANTS.get(exercise, {})) >= MIN_MUTANTS


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("exercise", EXERCISES)
def test_solution_passes(exercise, seed):
    result = checks.run(exercise, solution_answer(exercise), seed=seed)
    assert result.status == "passed", result.message


@pytest.mark.parametrize("exercise,mutant", [(e, m) for e, ms in MUTANTS.items() for m in ms])
def test_wrong_answer_fails(exercise, mutant):
    for seed in SEEDS:
        result = checks.run(exercise, MUTANTS[exercise][mutant], seed=seed)
        assert result.status == "failed", f"seed {seed}: {result}"
        assert result.message


@pytest.mark.parametrize("exercise", EXERCISES)
def test_stub_is_not_attempted(exercise):
    result = checks.run(exercise, not_implemented)
    assert result.status == "not attempted"
    assert "NotImplementedError" in result.message

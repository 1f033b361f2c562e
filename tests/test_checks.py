"""Every exercise check passes the solution, fails each deliberately wrong answer, and calls an
untouched stub "not attempted".

The wrong answers (mutants) of lesson NN live in tests/test_checks_NN.py as ``MUTANTS``, an
exercise id → {mistake: wrong answer} table, beside the tests of that lesson's messages.
"""
import importlib
import pathlib
import traceback

import pytest
import tensorflow as tf

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


def _made_by_answer() -> bool:
    """Whether the variable being created is the answer's: checks call the answer only through
    checks.call and checks.value_and_gradient."""
    return any(frame.filename == checks.__file__ and frame.name in ("call", "value_and_gradient")
               for frame in traceback.extract_stack())


@pytest.mark.parametrize("exercise", EXERCISES)
def test_check_reuses_its_reference_layers(exercise):
    """A grader runs each check hundreds of times in one process, and every new Keras variable
    leaves entries in TensorFlow's kernel cache that are never freed: once warm, a check must
    create no variable of its own (the answer's variables are the worker's, in grading)."""
    answer = solution_answer(exercise)
    checks.run(exercise, answer, seed=0)
    made = []

    def count(next_creator, **kwargs):
        if not _made_by_answer():
            made.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(count):
        result = checks.run(exercise, answer, seed=0)
    assert result.status == "passed", result.message
    assert made == []

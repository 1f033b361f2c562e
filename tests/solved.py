"""The solved answers, read from the solution notebooks, for testing the checks."""
import functools

import keras
import nbformat
import numpy as np
import tensorflow as tf

import utils  # noqa: F401  (imports TensorFlow quietly and registers the checks)
from utils import grading, lessons

SOLUTIONS = {path.name[:2]: path for path in lessons.solution_paths()}


@functools.cache
def solution_answers(lesson: str) -> dict:
    """Run the answer cells of solution notebook ``lesson`` ("01") and return what they define.

    Answer cells use only the lesson's imports (tf, np, keras) and earlier answers.
    """
    notebook = nbformat.read(SOLUTIONS[lesson], as_version=4)
    namespace = {"tf": tf, "np": np, "keras": keras}
    for cell in notebook.cells:
        if lessons.is_answer_cell(cell):
            exec(compile(cell.source, f"{SOLUTIONS[lesson].name}:{cell.id}", "exec"), namespace)
    return namespace


def not_implemented(*args, **kwargs):
    """What an untouched exercise stub does."""
    raise NotImplementedError()


def exercise_ids() -> list[str]:
    """Every exercise of every solution notebook, in course order."""
    return [e.id for path in SOLUTIONS.values() for e in lessons.exercises(nbformat.read(path, as_version=4))]


def solution_answer(exercise_id: str):
    """The solved object an exercise's check is given (the name its check cell passes)."""
    lesson = exercise_id[:2]
    for cell in nbformat.read(SOLUTIONS[lesson], as_version=4).cells:
        if lessons.is_check_cell(cell) and lessons.nbgrader(cell)["grade_id"] == exercise_id + lessons.CHECK_SUFFIX:
            return solution_answers(lesson)[grading.answered_name(cell.source)]
    raise KeyError(exercise_id)


class Elsewhere:
    """An answer that runs somewhere else, like the grader's proxy of a student's function: a
    check must ask it for gradients (``value_and_gradient``) instead of taping it locally."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def value_and_gradient(self, *args_then_wrt):
        *args, wrt = args_then_wrt
        with tf.GradientTape() as tape:
            tape.watch(args[wrt])
            y = self.function(*args)
        return y, tape.gradient(y, args[wrt])


def without_skipped_cells(path) -> bytes:
    """Notebook ``path`` without its ``skip-grading`` cells (training and plots that no answer
    needs): the exercises and what they need, which is what the grader runs. Tests of grading
    tools use it so that they do not spend minutes training what the nbval run trains already."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [c for c in notebook.cells if grading.SKIP_TAG not in c.metadata.get("tags", [])]
    return nbformat.writes(notebook).encode()

"""The solved answers, read from the solution notebooks, for testing the checks."""
import functools

import keras
import nbformat
import numpy as np
import tensorflow as tf

import utils  # noqa: F401  (imports TensorFlow quietly and registers the checks)
from utils import lessons

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

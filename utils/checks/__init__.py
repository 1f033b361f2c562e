"""Exercise checks: each judges a learner's answer on inputs it draws itself.

A check is a function registered under an exercise id such as ``"01-sigmoid"``. It takes
the learner's answer (a function or a layer class) and a NumPy random generator, calls
the answer on freshly drawn inputs, and compares the results with an independent
reference: a TensorFlow/Keras built-in, a brute-force definition or a property. It returns
a one-line summary when everything agrees and raises :class:`CheckFailed` with a message
a learner can act on when something does not. Checks never read a solution notebook.

In a notebook, ``utils.check_exercise("01-sigmoid", sigmoid)`` runs one check and prints
the verdict; the grader calls :func:`run` with the same ids.
"""
import contextlib
import dataclasses
import importlib
import pkgutil
import threading
import time
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

CHECKS: dict[str, Callable[[Any, np.random.Generator], str]] = {}


def register(exercise_id: str):
    """Decorator that files a check under its exercise id."""

    def add(check):
        if exercise_id in CHECKS:
            raise ValueError(f"two checks registered for {exercise_id}")
        CHECKS[exercise_id] = check
        return check

    return add


class CheckFailed(AssertionError):
    """The answer is wrong; the message says how, in the learner's terms."""

    def _render_traceback_(self):
        # IPython shows these lines instead of a traceback through the check's code.
        return [f"\x1b[31m✗ {self}\x1b[0m"]


class NotAttempted(CheckFailed):
    """The answer still raises NotImplementedError: the exercise is not done yet."""


@dataclasses.dataclass
class Result:
    exercise: str
    status: str  # "passed", "failed" or "not attempted"
    message: str
    seconds: float


@contextlib.contextmanager
def full_float32_precision():
    """Turn TensorFloat-32 off while a check runs, so float32 matrix products on recent
    NVIDIA GPUs are as exact as on a CPU and tight tolerances stay fair."""
    was_enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(was_enabled)


def run(exercise_id: str, answer: Any, seed: int | None = None) -> Result:
    """Run the check of ``exercise_id`` on ``answer`` and return its verdict.

    Anything the answer does wrong, including raising or returning garbage, becomes a
    "failed" result with a message; only an unknown exercise id is an error.
    """
    if exercise_id not in CHECKS:
        known = ", ".join(sorted(CHECKS))
        raise KeyError(f"no check for exercise {exercise_id!r}; known exercises: {known}")
    start = time.perf_counter()
    try:
        with full_float32_precision():
            summary = CHECKS[exercise_id](answer, np.random.default_rng(seed))
        status, message = "passed", summary
    except NotAttempted as error:
        status, message = "not attempted", str(error)
    except CheckFailed as error:
        status, message = "failed", str(error)
    except Exception as error:  # the answer returned something the check could not handle
        status, message = "failed", f"your answer broke the check: {type(error).__name__}: {error}"
    return Result(exercise_id, status, message, time.perf_counter() - start)


def check_exercise(exercise_id: str, answer: Any) -> None:
    """Check one exercise from a notebook: print a tick, or raise with the reason."""
    result = run(exercise_id, answer)
    if result.status == "passed":
        print(f"✓ {exercise_id} passed: {result.message}")
    elif result.status == "not attempted":
        raise NotAttempted(f"{exercise_id} is not implemented yet. {result.message}")
    else:
        raise CheckFailed(f"{exercise_id} failed: {result.message}")


# ---------------------------------------------------------------------------------------
# Helpers the lesson checks share.


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The reference softmax every check compares against (shifted by the max, so stable)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def call(answer: Callable, *args, what: str):
    """Call the learner's answer, turning its exceptions into check verdicts.

    ``what`` names the call in messages, e.g. ``"sigmoid(x)"``.
    """
    try:
        return answer(*args)
    except NotImplementedError:
        raise NotAttempted(
            "Replace `raise NotImplementedError()` in the exercise cell with your code, "
            "run that cell, then run this check again."
        ) from None
    except Exception as error:
        raise CheckFailed(f"{what} raised {type(error).__name__}: {error}") from None


def value_and_gradient(answer: Callable, *args, what: str, wrt: int = 0):
    """``answer(*args)`` and the gradient of its sum with respect to ``args[wrt]``.

    The tf.GradientTape runs where the answer lives: here, or, for an answer being graded
    (which has a ``value_and_gradient`` method), in the grader's worker. The gradient is None
    when the output is not a tensor computed from that argument (e.g. behind tf.stop_gradient).
    """
    args = [tf.constant(a) if isinstance(a, np.ndarray) else a for a in args]
    if hasattr(answer, "value_and_gradient"):
        return call(answer.value_and_gradient, *args, wrt, what=what)
    with tf.GradientTape() as tape:
        tape.watch(args[wrt])
        y = call(answer, *args, what=what)
    return y, (tape.gradient(y, args[wrt]) if tf.is_tensor(y) else None)


def to_numpy(value: Any, what: str) -> np.ndarray:
    """Accept a tensor, a NumPy array or a Python number; refuse anything else clearly."""
    if value is None:
        raise CheckFailed(f"{what} returned None: is a `return` statement missing?")
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value.numpy()
    if isinstance(value, (np.ndarray, np.generic, int, float)):
        return np.asarray(value)
    raise CheckFailed(
        f"{what} returned a {type(value).__name__}; expected a tensor (or a NumPy array)."
    )


def expect_dtype(got: np.ndarray, expected: np.dtype, what: str) -> None:
    """Fail unless the result kept the expected floating-point type."""
    if got.dtype != expected:
        raise CheckFailed(
            f"{what} returned {got.dtype} for {np.dtype(expected).name} input; it should keep "
            "the input's dtype (avoid hard-coding float32 constants or casting)."
        )


def expect_close(
    got: np.ndarray,
    expected: np.ndarray,
    what: str,
    *,
    rtol: float,
    atol: float,
    inputs: np.ndarray | None = None,
    reference: str = "the reference",
    likely_causes: dict[str, np.ndarray | Callable[[], np.ndarray]] | None = None,
) -> None:
    """Fail unless ``got`` has the expected shape and values within tolerance.

    ``inputs`` (same shape as the output) lets the message say at which x it went wrong;
    ``likely_causes`` maps a known mistake to the output that mistake would produce, so
    when the answer matches one, the message names it. A costly output may be given as a
    function: it is computed only when the answer is wrong.
    """
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}.")
    bad_nan = np.isnan(got) & ~np.isnan(expected)
    wrong = bad_nan | ~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not wrong.any():
        return
    index = tuple(int(i) for i in np.unravel_index(np.argmax(wrong), wrong.shape))
    if inputs is not None:
        where = f" at x = {inputs[index]:.6g}"
    else:
        where = f" at index {list(index)}" if index else ""
    message = (
        f"{what} is wrong in {wrong.sum()} of {wrong.size} entries; first{where}: "
        f"you returned {got[index]:.6g}, {reference} gives {expected[index]:.6g}."
    )
    for cause, output in (likely_causes or {}).items():
        output = np.asarray(output() if callable(output) else output)
        if output.shape == got.shape and np.allclose(got, output, rtol=rtol, atol=atol, equal_nan=True):
            message += f" Likely cause: {cause}"
            break
    raise CheckFailed(message)


_BUILT = threading.local()


def built_once(make: Callable[[], Any], *key) -> Any:
    """What ``make()`` builds for ``key`` (a reference layer, an optimizer): built once per
    thread, then reused.

    Checks copy fresh weights or state into it each time. A new Keras object per check would
    cost time, and each new Keras variable leaves entries in TensorFlow's kernel cache that
    are never freed: a grader that built fresh references for every submission grew by
    gigabytes over a class. One copy per thread, because the grader checks several notebooks
    at once.
    """
    built = _BUILT.__dict__.setdefault("built", {})
    if key not in built:
        built[key] = make()
    return built[key]


def keras_dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, activation) -> np.ndarray:
    """What ``keras.layers.Dense`` with this kernel [inputs, units], bias and activation gives
    for ``x``, computed in x's dtype."""
    (inputs, units), dtype = kernel.shape, np.dtype(x.dtype).name

    def make():
        layer = keras.layers.Dense(units, activation=activation, dtype=dtype)
        layer.build((None, inputs))
        return layer

    layer = built_once(make, "Dense", inputs, units, activation, dtype)
    layer.set_weights([kernel, bias])
    return layer(x).numpy()


def tolerances(dtype: np.dtype) -> dict[str, float]:
    """rtol/atol that allow rounding differences but catch any real mistake."""
    if np.dtype(dtype) == np.float64:
        return {"rtol": 1e-9, "atol": 1e-12}
    return {"rtol": 1e-5, "atol": 1e-6}


# Register every lesson's checks: each module utils/checks/lessonNN.py files its own.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

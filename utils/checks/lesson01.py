"""Checks for lesson 01, neurons and activations.

The activations are compared with Keras's own on random tensors of several shapes and on
extreme values, in float32 and float64, and their gradients (taken by tf.GradientTape
through the learner's code) with the textbook derivatives.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import (CheckFailed, call, expect_close, expect_dtype, keras_dense, register, to_numpy, tolerances,
                          value_and_gradient)

FLOAT_TYPES = (np.float32, np.float64)
SHAPES = [(), (7,), (3, 4), (2, 3, 5)]
EXTREMES = [-1000.0, -100.0, -30.0, -1.5, -1e-8, 0.0, 1e-8, 1.5, 30.0, 100.0, 1000.0]


def _inputs(rng: np.random.Generator):
    """Random tensors of several shapes, then the extreme values, in both float types."""
    for dtype in FLOAT_TYPES:
        for shape in SHAPES:
            yield rng.normal(scale=5.0, size=shape).astype(dtype)
        yield np.array(EXTREMES, dtype)


def _values(answer, name: str, x: np.ndarray) -> np.ndarray:
    """The learner's output for x, with NumPy overflow turned into an error."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = to_numpy(call(answer, tf.constant(x), what=f"{name}(x)"), f"{name}(x)")
    expect_dtype(got, x.dtype, f"{name}(x)")
    if np.isnan(got).any():
        at = x[np.isnan(got)].flat[0] if x.shape == got.shape else "some x"
        raise CheckFailed(
            f"{name}(x) returned NaN at x = {at} ({x.dtype.name}). exp of a large number "
            "overflows to inf, and inf/inf is NaN: arrange the formula so that exp only ever "
            "sees numbers ≤ 0 (treat x ≥ 0 and x < 0 separately)."
        )
    return got


def _gradient(answer, name: str, x: np.ndarray) -> np.ndarray:
    """d answer(x) / dx elementwise, taken by tf.GradientTape through the learner's code."""
    y, grad = value_and_gradient(answer, x, what=f"{name}(x)")
    if not tf.is_tensor(y):
        raise CheckFailed(
            f"{name}(x) returned a {type(y).__name__}, so tf.GradientTape cannot differentiate "
            "it: build it from TensorFlow ops (tf.exp, tf.where, tf.maximum), not NumPy."
        )
    if grad is None:
        raise CheckFailed(
            f"tf.GradientTape finds no path from x to {name}(x): build it from TensorFlow "
            "ops applied to x (no NumPy, no .numpy() in between)."
        )
    return grad.numpy()


def _check_gradient(answer, name, x, expected, *, hints):
    got = _gradient(answer, name, x)
    if np.isnan(got).any():
        at = x[np.isnan(got)][0]
        raise CheckFailed(
            f"the gradient of {name} is NaN at x = {at}, though its value is fine. tf.where "
            "differentiates both branches: if the branch you discard overflows there "
            "(exp(1000) = inf), its NaN leaks into the gradient. Feed each branch only inputs "
            "that are safe for it, e.g. tf.minimum(x, 0) and tf.maximum(x, 0)."
        )
    tol = {k: 10 * v for k, v in tolerances(x.dtype).items()}
    expect_close(got, expected, f"the gradient of {name}", inputs=x, reference="the textbook derivative",
                 likely_causes=hints, **tol)


@register("01-sigmoid")
def check_sigmoid(sigmoid, rng: np.random.Generator) -> str:
    for x in _inputs(rng):
        got = _values(sigmoid, "sigmoid", x)
        expected = keras.activations.sigmoid(x).numpy()
        expect_close(got, expected, f"sigmoid(x) for {x.dtype.name} x of shape {x.shape}", inputs=x,
                     reference="keras.activations.sigmoid", **tolerances(x.dtype),
                     likely_causes={"the sign in the exponent is flipped: σ(x) = 1 / (1 + exp(−x)).":
                                    keras.activations.sigmoid(-x).numpy()})
    for dtype in FLOAT_TYPES:
        x = np.array(EXTREMES + list(rng.normal(scale=3.0, size=8)), dtype)
        s = keras.activations.sigmoid(x).numpy()
        _check_gradient(sigmoid, "sigmoid", x, s * (1 - s), hints={})
    return "matches keras.activations.sigmoid in float32 and float64, finite at ±1000, gradients σ(1−σ) everywhere."


@register("01-tanh")
def check_tanh(tanh, rng: np.random.Generator) -> str:
    for x in _inputs(rng):
        got = _values(tanh, "tanh", x)
        expected = np.tanh(x)
        expect_close(got, expected, f"tanh(x) for {x.dtype.name} x of shape {x.shape}", inputs=x,
                     reference="tf.math.tanh", **tolerances(x.dtype),
                     likely_causes={
                         "2σ(x) − 1 is tanh(x/2); the identity is tanh(x) = 2σ(2x) − 1.": np.tanh(x / 2),
                         "that is σ(x), not tanh(x) = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ).": keras.activations.sigmoid(x).numpy(),
                     })
    for dtype in FLOAT_TYPES:
        x = np.array(EXTREMES + list(rng.normal(scale=3.0, size=8)), dtype)
        t = np.tanh(x)
        sign_bug = np.where(x == 0, 0.0, 1 - t**2).astype(dtype)
        _check_gradient(tanh, "tanh", x, 1 - t**2, hints={
            "tf.sign(x) is flat, so its gradient is 0 and the slope at x = 0 is lost; choose the "
            "branch with tf.where instead of multiplying by tf.sign(x).": sign_bug})
    return "matches tf.math.tanh in float32 and float64, finite at ±1000, gradients 1 − tanh² everywhere."


@register("01-relu")
def check_relu(relu, rng: np.random.Generator) -> str:
    for x in _inputs(rng):
        got = _values(relu, "relu", x)
        expect_close(got, keras.activations.relu(x).numpy(), f"relu(x) for {x.dtype.name} x of shape {x.shape}",
                     inputs=x, reference="keras.activations.relu", **tolerances(x.dtype),
                     likely_causes={
                         "that is leaky ReLU; plain ReLU sends every negative input to exactly 0.":
                             np.where(x > 0, x, 0.01 * x),
                         "that is |x|; ReLU sends negative inputs to 0, not to −x.": np.abs(x),
                         "that is min(x, 0); ReLU keeps the positive part, max(x, 0).": np.minimum(x, 0),
                         "that is a step function (the derivative of ReLU), not ReLU itself.": (x > 0).astype(x.dtype),
                     })
    for dtype in FLOAT_TYPES:
        x = np.array([v for v in EXTREMES if v != 0] + list(rng.normal(scale=3.0, size=8)), dtype)
        _check_gradient(relu, "relu", x, (x > 0).astype(dtype), hints={})
    return "matches keras.activations.relu in float32 and float64; gradient 1 for x > 0 and 0 for x < 0."


NEURON_ACTIVATIONS = {
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "relu": keras.activations.relu,
    "linear": keras.activations.linear,
}


def _apply(activation, z: np.ndarray) -> np.ndarray:
    return np.asarray(activation(tf.constant(z)))


@register("01-neuron")
def check_neuron(neuron, rng: np.random.Generator) -> str:
    for batch, features in [(1, 1), (1, 5), (8, 3), (16, 10)]:
        for dtype in FLOAT_TYPES:
            for name, activation in NEURON_ACTIVATIONS.items():
                x = rng.normal(size=(batch, features)).astype(dtype)
                w = rng.normal(size=features).astype(dtype)
                b = dtype(rng.normal())
                expected = keras_dense(x, w[:, None], np.array([b]), activation)[:, 0]

                what = f"neuron(x, w, b, {name}) with x of shape {x.shape}"
                got = to_numpy(call(neuron, tf.constant(x), tf.constant(w), tf.constant(b), activation, what=what), what)
                if got.shape == (batch, features):
                    raise CheckFailed(f"{what} has shape {got.shape}, expected ({batch},): sum the "
                                      "products over the features (x @ w, or tf.linalg.matvec).")
                if got.shape == (batch, 1):
                    raise CheckFailed(f"{what} has shape {got.shape}, expected ({batch},): one number per "
                                      "example; tf.linalg.matvec(x, w) gives that shape directly.")
                expect_dtype(got, dtype, what)
                z = x @ w
                expect_close(got, expected, what, reference="keras.layers.Dense(1) with the same weights",
                             **tolerances(dtype),
                             likely_causes={
                                 "the bias b is missing: y = φ(x·w + b).": _apply(activation, z),
                                 "the activation is applied before adding b: y = φ(x·w + b), not φ(x·w) + b.":
                                     _apply(activation, z) + b,
                                 "the activation is not applied: y = φ(x·w + b).": z + b,
                             })
    return "matches keras.layers.Dense(1) for 4 activations, batch sizes 1 to 16, float32 and float64."


# --- softmax ------------------------------------------------------------------------------

# Rows that break the usual shortcuts: huge logits (exp overflows), a row far below another
# (one shared max sends that row's exponentials to 0, and 0/0 = NaN), and one logit alone.
SOFTMAX_EXTREMES = [
    np.array([1000.0, 999.0, -1000.0]),
    np.array([[1000.0, 0.0, -5.0], [-1000.0, -1001.0, -1002.0]]),
    np.array([[3.0], [-2000.0]]),
]
SOFTMAX_SHAPES = [(5,), (3, 4), (4, 4), (2, 3, 5)]  # (4, 4) tells the last axis from the first


def _softmax_inputs(rng: np.random.Generator):
    for dtype in FLOAT_TYPES:
        for shape in SOFTMAX_SHAPES:
            yield rng.normal(scale=5.0, size=shape).astype(dtype)
        for z in SOFTMAX_EXTREMES:
            yield z.astype(dtype)


_ROW_MAX_HINT = ("this row's logits all lie far below the largest logit of the whole tensor: subtract each "
                 "row's own max (tf.reduce_max(z, axis=-1, keepdims=True)), not one max for everything.")


def _on_logits(answer, name: str, z: np.ndarray, per_logit: str) -> tuple[np.ndarray, str]:
    """The learner's output for logits z, checked for shape and dtype; and the call's name for messages."""
    what = f"{name}(z) for {z.dtype.name} z of shape {z.shape}"
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = to_numpy(call(answer, tf.constant(z), what=what), what)
    if got.shape != z.shape:
        raise CheckFailed(f"{what} has shape {got.shape}, expected {z.shape}: one {per_logit} per "
                          "logit. Did the max or the sum lose its axis? Use keepdims=True.")
    expect_dtype(got, z.dtype, what)
    return got, what


def _first_bad_row(got: np.ndarray, bad) -> tuple:
    """Index of the first row (all axes but the last) holding a value where bad(got) is True."""
    return tuple(int(i) for i in np.argwhere(bad(got))[0][:-1])


def _far_below(z: np.ndarray, row: tuple) -> bool:
    """Whether every logit of this row lies far below the tensor's largest: one shared max fails there."""
    return z[row].max() < z.max() - 100


def _in_row(row: tuple) -> str:
    return f"in row {list(row)} " if row else ""


def _logit_gradient(answer, name: str, z: np.ndarray) -> np.ndarray:
    """The gradient of the sum of answer(z) with respect to z, by tf.GradientTape through the learner's code."""
    y, grad = value_and_gradient(answer, z, what=f"{name}(z)")
    if not tf.is_tensor(y) or grad is None:
        raise CheckFailed(f"tf.GradientTape finds no path from z to {name}(z): build it from TensorFlow "
                          "ops on z (tf.exp, tf.math.log, tf.reduce_max, tf.reduce_sum), no NumPy in between.")
    return grad.numpy()


def _softmax_causes(z: np.ndarray) -> dict:
    """What the usual mistakes return for logits z."""
    causes = {}
    if z.ndim >= 2:
        causes["you normalised over the first axis; softmax normalises each row, over the last "
               "axis (axis=-1)."] = tf.nn.softmax(z, axis=0).numpy()
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    causes["the exponentials are not divided by their sum, so they do not add up to 1."] = e
    return causes


@register("01-softmax")
def check_softmax(softmax, rng: np.random.Generator) -> str:
    for z in _softmax_inputs(rng):
        got, what = _on_logits(softmax, "softmax", z, "probability")
        if np.isnan(got).any():
            row = _first_bad_row(got, np.isnan)
            if _far_below(z, row):
                hint = _ROW_MAX_HINT
            else:
                hint = ("exp of a large logit overflows to inf, and inf/inf is NaN: subtract the row's "
                        "max first (the log-sum-exp trick), so exp only sees numbers ≤ 0.")
            raise CheckFailed(f"{what} returned NaN {_in_row(row)}(logits {z[row]}): {hint}")
        expect_close(got, tf.nn.softmax(z).numpy(), what, reference="tf.nn.softmax", **tolerances(z.dtype),
                     likely_causes=_softmax_causes(z))
    z = np.array([[1000.0, -1000.0, 0.5], [2.0, 1.0, 0.1]], np.float32)
    if not np.isfinite(_logit_gradient(softmax, "softmax", z)).all():
        raise CheckFailed("the gradient of softmax(z) is not finite at logits of ±1000, though its value "
                          "is fine: keep every exp's argument ≤ 0.")
    return ("matches tf.nn.softmax over the last axis in float32 and float64, for shapes up to 3-D and "
            "logits of ±1000, with finite gradients.")


def _log_softmax_causes(z: np.ndarray) -> dict:
    """What the usual mistakes return for logits z (computed only for a wrong answer)."""
    c = z.max(axis=-1, keepdims=True)
    log_sum = np.log(np.exp(z - c).sum(axis=-1, keepdims=True))
    causes = {
        "the shift is not undone: log Σ_k e^{z_k} is c + log Σ_k e^{z_k − c}, so subtract c as well.":
            lambda: z - log_sum,
        "the log of the denominator is missing: log s_i = (z_i − c) − log Σ_k e^{z_k − c}.": lambda: z - c,
        "the sign is flipped: log s_i ≤ 0, since every probability is at most 1.": lambda: log_sum - (z - c),
    }
    if z.ndim >= 2:
        causes["you normalised over the first axis; log-softmax works on each row, over the last axis "
               "(axis=-1)."] = lambda: tf.nn.log_softmax(z, axis=0).numpy()
    return causes


@register("01-log_softmax")
def check_log_softmax(log_softmax, rng: np.random.Generator) -> str:
    for z in _softmax_inputs(rng):
        got, what = _on_logits(log_softmax, "log_softmax", z, "log-probability")
        if not np.isfinite(got).all():
            row = _first_bad_row(got, lambda v: ~np.isfinite(v))
            value = got[row][~np.isfinite(got[row])][0]
            if _far_below(z, row):
                hint = _ROW_MAX_HINT
            elif np.isfinite(got[row]).any():  # only the row's small logits broke: an underflow
                hint = ("a probability underflowed to 0 and its log is −inf: never take the log of a "
                        "probability. Write log s_i directly in the logits, with the max subtracted, so that "
                        "the only log taken is of a sum that cannot be smaller than 1.")
            else:  # the whole row broke: an overflow in the shared sum
                hint = ("exp of a large logit overflows to inf: subtract the row's max before any exp, "
                        "and take the log of the shifted sum.")
            raise CheckFailed(f"{what} returned {value} {_in_row(row)}(logits {z[row]}): {hint}")
        expect_close(got, tf.nn.log_softmax(z).numpy(), what, reference="tf.nn.log_softmax", **tolerances(z.dtype),
                     likely_causes=_log_softmax_causes(z))
    for dtype in FLOAT_TYPES:
        z = np.array([[1000.0, -1000.0, 0.5], [2.0, 1.0, 0.1], [0.0, -200.0, -50.0]], dtype)
        got = _logit_gradient(log_softmax, "log_softmax", z)
        if not np.isfinite(got).all():
            raise CheckFailed("the gradient of log_softmax(z) is not finite at logits of ±1000, though its "
                              "values are fine: keep every exp's argument ≤ 0 and take no log of anything "
                              "that can round to 0.")
        # d/dz_j of Σ_i log s_i = 1 − K s_j: the reference is the tape through tf.nn.log_softmax.
        expected = value_and_gradient(tf.nn.log_softmax, z, what="tf.nn.log_softmax(z)")[1].numpy()
        expect_close(got, expected, f"the gradient of Σ_i log_softmax(z)_i for {np.dtype(dtype).name} z",
                     reference="tf.GradientTape through tf.nn.log_softmax",
                     **{k: 10 * v for k, v in tolerances(dtype).items()})
    return ("matches tf.nn.log_softmax over the last axis in float32 and float64, finite for logits of "
            "±1000 and for probabilities that underflow, with gradients as tf.GradientTape gives.")


def _reference_jacobian(z: np.ndarray) -> np.ndarray:
    """d softmax(z)_i / d z_j for every row of z, by tf.GradientTape through tf.nn.softmax.

    Rows do not interact, so the gradient of output i summed over the batch is row i of
    every example's Jacobian.
    """
    z = tf.constant(z)
    rows = []
    for i in range(z.shape[-1]):
        with tf.GradientTape() as tape:
            tape.watch(z)
            s_i = tf.reduce_sum(tf.nn.softmax(z)[:, i])
        rows.append(tape.gradient(s_i, z).numpy())
    return np.stack(rows, axis=1)


@register("01-softmax_jacobian")
def check_softmax_jacobian(softmax_jacobian, rng: np.random.Generator) -> str:
    cases = [rng.normal(scale=2.0, size=(batch, n)) for batch, n in [(1, 1), (1, 3), (4, 2), (8, 5), (3, 7)]]
    cases.append(np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]]))
    for dtype in FLOAT_TYPES:
        for z in cases:
            z = z.astype(dtype)
            batch, n = z.shape
            what = f"softmax_jacobian(z) for {z.dtype.name} z of shape {z.shape}"
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                got = to_numpy(call(softmax_jacobian, tf.constant(z), what=what), what)
            if got.shape != (batch, n, n):
                raise CheckFailed(f"{what} has shape {got.shape}, expected {(batch, n, n)}: one K×K matrix "
                                  "per row b of z, with J[b, i, j] = ∂s_i/∂z_j (K = number of logits).")
            expect_dtype(got, z.dtype, what)
            if np.isnan(got).any():
                raise CheckFailed(f"{what} contains NaN (logits {z.tolist()}): build it from a softmax "
                                  "that subtracts each row's max, so exp never overflows.")
            expected = _reference_jacobian(z)
            s = tf.nn.softmax(z).numpy()
            outer = s[:, :, None] * s[:, None, :]
            diagonal = np.eye(n, dtype=dtype) * s[:, None, :]
            expect_close(got, expected, what, reference="tf.GradientTape through tf.nn.softmax",
                         rtol=1e-4 if dtype == np.float32 else 1e-9,
                         atol=1e-6 if dtype == np.float32 else 1e-12,
                         likely_causes={
                             "you kept only the diagonal s_i(1 − s_i): moving z_j also changes every "
                             "other s_i, through the shared denominator (i ≠ j terms).":
                                 diagonal * (1 - s[:, None, :]),
                             "the diagonal term is missing: for i = j the numerator e^{z_i} depends on "
                             "z_i too, which adds s_i on the diagonal.": -outer,
                             "the sign is flipped: raising z_i raises s_i, so the diagonal must be "
                             "positive.": outer - diagonal,
                             "you built the formula from the logits z; it is written in the "
                             "probabilities s = softmax(z).":
                                 np.eye(n, dtype=dtype) * z[:, None, :] - z[:, :, None] * z[:, None, :],
                         })
    return "matches the Jacobian of tf.nn.softmax by tf.GradientTape for 1 to 7 classes, float32 and float64."

"""Checks for lesson 02, training a network.

The dense layer is compared with ``keras.layers.Dense`` holding the same weights, the two
losses with ``keras.losses.BinaryCrossentropy`` (from probabilities and from logits, on
random batches and on the extreme values where a naive formula breaks), and the update
rule with one step of ``keras.optimizers.SGD(learning_rate, weight_decay=...)`` on the
same tensors.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import (CheckFailed, call, expect_close, expect_dtype, register, to_numpy, tolerances,
                          value_and_gradient)

FLOAT_TYPES = (np.float32, np.float64)
ACTIVATIONS = {
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "relu": keras.activations.relu,
    "linear": keras.activations.linear,
}
EPSILON = 1e-7  # keras.backend.epsilon(): how far Keras keeps probabilities from 0 and 1


def _apply(activation, z: np.ndarray) -> np.ndarray:
    return np.asarray(activation(tf.constant(z)))


@register("02-dense")
def check_dense(dense, rng: np.random.Generator) -> str:
    # (batch, inputs, units); the square layer tells x @ W from x @ Wᵀ
    sizes = [(1, 1, 1), (5, 4, 4), (1, 3, 4), (8, 2, 16), (16, 10, 3)]
    for batch, inputs, units in sizes:
        for dtype in FLOAT_TYPES:
            for name, activation in ACTIVATIONS.items():
                x = rng.normal(size=(batch, inputs)).astype(dtype)
                W = rng.normal(size=(inputs, units)).astype(dtype)
                b = rng.normal(size=units).astype(dtype)
                reference = keras.layers.Dense(units, activation=activation, dtype=np.dtype(dtype).name)
                reference.build((None, inputs))
                reference.set_weights([W, b])
                expected = reference(x).numpy()

                what = f"dense(x, W, b, {name}) with x of shape {x.shape} and W of shape {W.shape}"
                got = to_numpy(call(dense, tf.constant(x), tf.constant(W), tf.constant(b), activation,
                                    what=what), what)
                if got.shape != expected.shape:
                    raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape} "
                                      "= [batch, units]: multiply x @ W, then add b to every row.")
                expect_dtype(got, dtype, what)
                z = x @ W
                causes = {
                    "the bias b is missing: y = φ(x W + b).": _apply(activation, z),
                    "the activation is applied before adding b: y = φ(x W + b), not φ(x W) + b.":
                        _apply(activation, z) + b,
                    "the activation is not applied: y = φ(x W + b).": z + b,
                }
                if inputs == units:
                    causes["W is transposed: x has shape [batch, inputs] and W [inputs, units], so "
                           "the product is x @ W."] = _apply(activation, x @ W.T + b)
                expect_close(got, expected, what, reference="keras.layers.Dense with the same weights",
                             likely_causes=causes, **tolerances(dtype))
    return ("matches keras.layers.Dense for 4 activations, 1 to 16 units, batch sizes 1 to 16, "
            "float32 and float64.")


# --- binary cross-entropy -------------------------------------------------------------------


def _labels(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(0, 2, size=shape).astype(np.float32)


def _batch_shapes(rng: np.random.Generator):
    """Batches as vectors [batch] and as columns [batch, 1], including a batch of one."""
    return [(1,), (int(rng.integers(2, 9)),), (32,), (1, 1), (int(rng.integers(5, 17)), 1)]


def _scalar_loss(answer, name: str, y: np.ndarray, second: np.ndarray, argument: str):
    what = f"{name}(y_true, {argument}) for a batch of shape {y.shape}"
    got = to_numpy(call(answer, tf.constant(y), tf.constant(second), what=what), what)
    if got.shape != ():
        hint = (" Did you forget to average over the batch (tf.reduce_mean)?" if got.size == y.size
                else "")
        raise CheckFailed(f"{what} has shape {got.shape}; the loss is one number, the mean over the "
                          f"batch.{hint}")
    return got, what


def _loss_causes(expected: float, y: np.ndarray, per_example: np.ndarray, wrong_side: np.ndarray) -> dict:
    """Outputs of the usual mistakes with a cross-entropy, given the right per-example losses."""
    return {
        "you summed over the batch; the loss is the mean, L = −(1/N) Σ …": expected * y.size,
        "the minus sign is missing: log ŷ < 0, so L = −(1/N) Σ [y log ŷ + (1−y) log(1−ŷ)] is positive.":
            -expected,
        "only the y·log ŷ term is there; examples with y = 0 contribute (1−y)·log(1−ŷ).":
            np.mean(per_example * y),
        "the two terms are swapped: y goes with log ŷ and (1−y) with log(1−ŷ).": np.mean(wrong_side),
        "the logarithm has the wrong base: use the natural log, tf.math.log.": expected / np.log(10.0),
    }


@register("02-binary_cross_entropy")
def check_binary_cross_entropy(bce, rng: np.random.Generator) -> str:
    keras_bce = keras.losses.BinaryCrossentropy()
    for shape in _batch_shapes(rng):
        y = _labels(rng, shape)
        p = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
        got, what = _scalar_loss(bce, "binary_cross_entropy", y, p, "y_pred")
        expect_dtype(got, np.float32, what)
        expected = keras_bce(y, p).numpy()
        per_example = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        wrong_side = -((1 - y) * np.log(p) + y * np.log(1 - p))
        expect_close(got, expected, what, reference="keras.losses.BinaryCrossentropy()",
                     likely_causes=_loss_causes(expected, y, per_example, wrong_side), **tolerances(np.float32))

    # Predictions of exactly 0 and 1, right and wrong: log(0) = -inf unless the answer guards it.
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0], np.float32)
    p = np.array([1, 0, 0, 1, 0.5, 0.5, 1e-9, 1 - 1e-8], np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        got, what = _scalar_loss(bce, "binary_cross_entropy", y, p, "y_pred")
    if not np.isfinite(got):
        raise CheckFailed(
            f"binary_cross_entropy returned {got} when some predictions are exactly 0 or 1 "
            "(log 0 = −inf, and 0 · log 0 is nan). Keep ŷ away from 0 and 1 first, as Keras does: "
            "tf.clip_by_value(y_pred, ε, 1 − ε) with ε = 1e-7 (keras.backend.epsilon())."
        )
    expected = keras_bce(y, p).numpy()
    # Clipping to [ε, 1−ε] (Keras) and adding ε inside the log differ by ~1% here; both are fine.
    if not np.isclose(got, expected, rtol=0.02):
        raise CheckFailed(
            f"with predictions of exactly 0 and 1, {what} is {got:.4g}; Keras, which clips ŷ to "
            f"[1e-7, 1 − 1e-7], gives {expected:.4g}. A confidently wrong prediction should cost "
            "about −log(1e-7) ≈ 16: use ε = 1e-7 (keras.backend.epsilon()), not a larger one."
        )
    return ("matches keras.losses.BinaryCrossentropy() on batches of 1 to 32, as [batch] and "
            "[batch, 1], and stays finite (≈ Keras's clipped value) at ŷ = 0 and ŷ = 1.")


CAPPED = ("Your loss seems to go through σ(z) and clipped probabilities: it loses precision where "
          "σ(z) is near 0 or 1, and is capped near 16 for a confident mistake. Work with the logit "
          "itself (the stable form), so that a confident mistake costs |z|.")
EXTREME_LOGITS = [-1000.0, -100.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 30.0, 100.0, 1000.0]


@register("02-binary_cross_entropy_from_logits")
def check_binary_cross_entropy_from_logits(bce, rng: np.random.Generator) -> str:
    name = "binary_cross_entropy_from_logits"
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True)
    for shape in _batch_shapes(rng):
        y = _labels(rng, shape)
        z = rng.normal(scale=4.0, size=shape).astype(np.float32)
        got, what = _scalar_loss(bce, name, y, z, "logits")
        expect_dtype(got, np.float32, what)
        expected = keras_bce(y, z).numpy()
        softplus = np.logaddexp(0.0, -z)  # −log σ(z)
        per_example = softplus + (1 - y) * z
        wrong_side = softplus + y * z
        through_probabilities = keras.losses.BinaryCrossentropy()(y, tf.math.sigmoid(z).numpy()).numpy()
        if not np.isclose(got, expected, rtol=1e-5, atol=1e-6) and np.isclose(got, through_probabilities, rtol=1e-4):
            raise CheckFailed(f"{what} is {got:.6g}, Keras gives {expected:.6g}. {CAPPED}")
        causes = _loss_causes(expected, y, per_example, wrong_side)
        causes["the logits went into the probability formula: apply σ first, ŷ = σ(z)."] = np.mean(
            -(y * np.log(np.clip(z, EPSILON, 1 - EPSILON)) + (1 - y) * np.log(np.clip(1 - z, EPSILON, 1 - EPSILON))))
        expect_close(got, expected, what, reference="keras.losses.BinaryCrossentropy(from_logits=True)",
                     likely_causes=causes, **tolerances(np.float32))

    # Extreme logits with both labels: the value, then its gradient (σ(z) − y) / N.
    z = np.array(EXTREME_LOGITS * 2, np.float32)
    y = np.repeat(np.array([0.0, 1.0], np.float32), len(EXTREME_LOGITS))
    for i in range(len(z)):  # one example at a time, so the message can name the logit
        zi, yi = z[i:i + 1], y[i:i + 1]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            got, what = _scalar_loss(bce, name, yi, zi, "logits")
        expected = keras_bce(yi, zi).numpy()
        if not np.isfinite(got):
            raise CheckFailed(
                f"{name} returned {got} for the logit z = {zi[0]:g} with label y = {yi[0]:g}: exp of "
                "a large number overflows (or σ(z) rounds to 0 or 1 and log 0 = −inf). Use the stable "
                "form max(z, 0) − z·y + log(1 + exp(−|z|)), where exp only sees numbers ≤ 0."
            )
        if not np.isclose(got, expected, rtol=1e-5, atol=1e-6):
            hint = ""
            if abs(zi[0]) >= 30 and got < expected and expected > 17:
                hint = " " + CAPPED
            raise CheckFailed(f"{what} is {got:.6g} for z = {zi[0]:g}, y = {yi[0]:g}; Keras gives "
                              f"{expected:.6g}.{hint}")
    # Skip z = 0 exactly for the gradient: there |z| has no derivative, and tf.abs's choice (0)
    # is as fair as any.
    keep = z != 0
    z, y = z[keep], y[keep]
    loss, grad = value_and_gradient(bce, y, z, what=f"{name}(y_true, logits)", wrt=1)
    if not tf.is_tensor(loss):
        raise CheckFailed(f"{name} returned a {type(loss).__name__}, so tf.GradientTape cannot "
                          "differentiate it: build it from TensorFlow ops, not NumPy.")
    if grad is None:
        raise CheckFailed(f"tf.GradientTape finds no path from the logits to {name}: use TensorFlow "
                          "ops on the logits (no NumPy, no .numpy() in between).")
    grad = grad.numpy()
    expected_grad = (keras.activations.sigmoid(z).numpy() - y) / len(z)
    if np.isnan(grad).any():
        at = z[np.isnan(grad)][0]
        raise CheckFailed(
            f"the gradient of {name} is nan at z = {at:g}, though the loss is finite. If you pick "
            "a branch with tf.where, both branches are differentiated: feed each one only logits "
            "that are safe for it, or use the single stable form max(z, 0) − z·y + log(1 + exp(−|z|))."
        )
    expect_close(grad, expected_grad, f"the gradient of {name} with respect to the logits", inputs=z,
                 reference="(σ(z) − y)/N", rtol=1e-4, atol=1e-7)
    return ("matches keras.losses.BinaryCrossentropy(from_logits=True) on batches of 1 to 32 and at "
            "logits up to ±1000, with gradient (σ(z) − y)/N everywhere.")


# --- gradient descent with weight decay ----------------------------------------------------


def _parameters(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """A small network's worth of parameters: kernels and biases of assorted shapes."""
    inputs, units = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    shapes = [(inputs, units), (units,), (units, 1), (1,)][:count]
    return [rng.normal(size=shape).astype(np.float32) for shape in shapes]


def _keras_sgd_step(params, grads, learning_rate, weight_decay) -> list[np.ndarray]:
    variables = [tf.Variable(p) for p in params]
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, weight_decay=weight_decay)
    optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    return [v.numpy() for v in variables]


@register("02-sgd_step")
def check_sgd_step(sgd_step, rng: np.random.Generator) -> str:
    # (η, λ): large values make every term visible; λ = 0 is plain gradient descent.
    settings = [(0.5, 0.5), (0.1, 0.0), (1.0, 0.2),
                (float(rng.uniform(0.01, 0.5)), float(rng.uniform(0.01, 0.3)))]
    for count in (4, 1):
        for lr, wd in settings:
            params = _parameters(rng, count)
            grads = [rng.normal(size=p.shape).astype(np.float32) for p in params]
            what = f"sgd_step(params, grads, learning_rate={lr:.3g}, weight_decay={wd:.3g})"
            new = call(sgd_step, [tf.constant(p) for p in params], [tf.constant(g) for g in grads], lr, wd,
                       what=what)
            if not isinstance(new, (list, tuple)):
                kind = "single tensor" if tf.is_tensor(new) else type(new).__name__
                raise CheckFailed(f"{what} returned a {kind}; return a list with one new "
                                  "tensor per parameter, in the same order.")
            if len(new) != len(params):
                raise CheckFailed(f"{what} returned {len(new)} tensors for {len(params)} parameters; "
                                  "return one new tensor per parameter.")
            expected = _keras_sgd_step(params, grads, lr, wd)
            for k, (p, g, e) in enumerate(zip(params, grads, expected)):
                out = f"parameter {k} (shape {p.shape}) of {what}"
                got = to_numpy(new[k], out)
                stepped = p - lr * g
                expect_close(got, e, out, reference="one step of keras.optimizers.SGD(learning_rate, weight_decay)",
                             rtol=1e-5, atol=1e-6, likely_causes={
                                 "the weight-decay term −ηλθ is missing.": stepped,
                                 "the decay shrinks the already-updated θ; both terms use the θ the "
                                 "gradient was taken at: θ − η∇L − ηλθ.": stepped - lr * wd * stepped,
                                 "the decay is not scaled by the learning rate: it is −ηλθ, not −λθ.":
                                     stepped - wd * p,
                                 "the step goes up the gradient: subtract η∇L.": p + lr * g - lr * wd * p,
                                 "the decay must shrink θ: subtract ηλθ, don't add it.": stepped + lr * wd * p,
                                 "the decay uses the gradient; it shrinks the parameter itself: −ηλθ.":
                                     stepped - lr * wd * g,
                             })
    return ("matches one step of keras.optimizers.SGD(learning_rate, weight_decay) for 1 and 4 "
            "parameters, with and without decay.")

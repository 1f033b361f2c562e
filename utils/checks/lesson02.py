"""Checks for lesson 02, training a network.

The dense layer is compared with ``keras.layers.Dense`` holding the same weights; the gradient
at the logits, which the learner derives, with ``tf.GradientTape`` through the loss (also where
σ(z) rounds to 0 or 1); the loss from logits with ``keras.losses.BinaryCrossentropy`` on random
batches and on the extreme values where a naive formula breaks; the update rule with one step
of ``keras.optimizers.SGD(learning_rate, weight_decay=...)``; backpropagation with
``tf.GradientTape``; one epoch of mini-batch SGD by replaying the order it reports (a
permutation, fixed by the seed, fresh each epoch) with one Keras SGD step per batch; and Adam
with ``keras.optimizers.Adam`` fed the same gradients.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import (CheckFailed, built_once, call, expect_close, expect_dtype, keras_dense, register, to_numpy,
                          tolerances, value_and_gradient)

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
                expected = keras_dense(x, W, b, activation)

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


# --- the gradient at the logits -------------------------------------------------------------

SATURATED_LOGITS = [-100.0, -40.0, -20.0, 20.0, 40.0, 100.0]  # σ(z) rounds to 0 or 1 in float32


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(tf.math.sigmoid(tf.constant(z)))


def _tape_gradient(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """∂L/∂z of the mean binary cross-entropy from logits, by tf.GradientTape: the reference."""
    z = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.constant(y), logits=z))
    return tape.gradient(loss, z).numpy()


def _gradient_causes(y: np.ndarray, z: np.ndarray) -> dict:
    """What the usual slips in deriving ∂L/∂z give, for these labels and logits."""
    p, n = _sigmoid(z), y.size
    return {
        "the 1/N is missing: L is the mean over the batch, so each example's term carries 1/N.": p - y,
        "the sign is flipped: the loss falls as z moves towards the label, so ∂L/∂z = (prediction − label)/N.":
            (y - p) / n,
        "σ′(z) = ŷ(1 − ŷ) is multiplied in once too often: ∂L/∂ŷ already has ŷ(1 − ŷ) in its denominator, "
        "and the chain rule multiplies by σ′(z) once, so they cancel.": (p - y) * p * (1 - p) / n,
        "the logit z stands where the probability ŷ = σ(z) should be.": (z - y) / n,
    }


@register("02-bce_gradient")
def check_bce_gradient(bce_gradient, rng: np.random.Generator) -> str:
    name = "bce_gradient"
    for shape in _batch_shapes(rng):
        for dtype in FLOAT_TYPES:
            y = _labels(rng, shape).astype(dtype)
            z = rng.normal(scale=3.0, size=shape).astype(dtype)
            what = f"{name}(y_true, logits) for {dtype.__name__} logits of shape {z.shape}"
            got = to_numpy(call(bce_gradient, tf.constant(y), tf.constant(z), what=what), what)
            if got.shape != z.shape:
                hint = (" You returned one number: the gradient has one entry per logit, ∂L/∂z_i, so do not "
                        "sum or average over the batch." if got.ndim == 0 or (got.size == 1 and z.size > 1) else "")
                raise CheckFailed(f"{what} has shape {got.shape}; it must have the shape of the logits, "
                                  f"{z.shape}.{hint}")
            expect_dtype(got, dtype, what)
            expect_close(got, _tape_gradient(y, z), what, inputs=z, reference="tf.GradientTape",
                         likely_causes=_gradient_causes(y, z), **tolerances(dtype))

    # Confident logits, right and wrong: where σ(z) rounds to 0 or 1, an unsimplified formula divides 0 by 0.
    z = np.array(SATURATED_LOGITS * 2, np.float32)
    y = np.repeat(np.array([0.0, 1.0], np.float32), len(SATURATED_LOGITS))
    what = f"{name}(y_true, logits) at logits of ±20, ±40 and ±100"
    with np.errstate(all="ignore"):
        got = to_numpy(call(bce_gradient, tf.constant(y), tf.constant(z), what=what), what)
    if got.shape == z.shape and not np.isfinite(got).all():
        at = int(np.flatnonzero(~np.isfinite(got))[0])
        raise CheckFailed(
            f"{what} is {got[at]} at z = {z[at]:g}, y = {y[at]:g}: there σ(z) is 0 or 1 in float32, so "
            "ŷ(1 − ŷ) is 0 and a formula that divides by it gives nan or inf. Simplify the product of "
            "the chain rule by hand before you code it: the factor ŷ(1 − ŷ) cancels.")
    expect_close(got, _tape_gradient(y, z), what, inputs=z, reference="tf.GradientTape", rtol=1e-5, atol=1e-7,
                 likely_causes=_gradient_causes(y, z))
    return ("matches tf.GradientTape for batches of 1 to 32, as [batch] and [batch, 1], float32 and "
            "float64, and stays exact at logits of ±100.")


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
            "logits up to ±1000, with gradient (σ(z) − y)/N at every logit tried except z = 0, where |z| "
            "has no derivative.")


# --- gradient descent with weight decay ----------------------------------------------------


def _parameters(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """A small network's worth of parameters: kernels and biases of assorted shapes."""
    inputs, units = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    shapes = [(inputs, units), (units,), (units, 1), (1,)][:count]
    return [rng.normal(size=shape).astype(np.float32) for shape in shapes]


def _keras_steps(optimizer_class, settings: dict, params, grads_per_step) -> list[list[np.ndarray]]:
    """The parameters after each step of a Keras optimizer fed these gradients, with these
    ``settings`` (learning rate, weight decay, β₁, …) set as its attributes. One optimizer per
    class and shapes is built once and reused (see built_once), restarted each time from its
    state when new."""
    shapes = [(p.shape, p.dtype.name) for p in params]

    def make():
        variables = [tf.Variable(np.zeros_like(p)) for p in params]
        optimizer = optimizer_class()
        optimizer.build(variables)
        return optimizer, variables, [v.numpy() for v in optimizer.variables]

    optimizer, variables, new = built_once(make, optimizer_class.__name__, *shapes)
    optimizer.set_weights(new)  # the step count and moments back to zero
    for name, value in settings.items():
        setattr(optimizer, name, value)
    for variable, p in zip(variables, params):
        variable.assign(p)
    steps = []
    for grads in grads_per_step:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        steps.append([v.numpy() for v in variables])
    return steps


def _keras_sgd_step(params, grads, learning_rate, weight_decay) -> list[np.ndarray]:
    settings = {"learning_rate": learning_rate, "weight_decay": weight_decay}
    return _keras_steps(keras.optimizers.SGD, settings, params, [grads])[0]


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


# --- backpropagation through the hidden layer ---------------------------------------------

PARAMETER_NAMES = ("dW1", "db1", "dW2", "db2")


def _two_layer_parts(x, y, W1, b1, W2, b2):
    """The forward pass of the lesson's network in NumPy, and the usual wrong gradients."""
    a = x @ W1 + b1
    h = np.maximum(a, 0)
    z = (h @ W2 + b2)[:, 0]
    dz = (1 / (1 + np.exp(-z)) - y) / len(y)
    dh_no_mask = dz[:, None] * W2[:, 0][None, :]
    dh = dh_no_mask * (a > 0)
    right = [x.T @ dh, dh.sum(0), h.T @ dz[:, None], dz.sum(keepdims=True)]
    mistakes = {
        "the hidden layer's error is missing the ReLU derivative: multiply by step(a) = [x W1 + b1 > 0], "
        "which zeroes the error of every unit that was off.":
            [x.T @ dh_no_mask, dh_no_mask.sum(0), right[2], right[3]],
        "the bias gradients are averaged over the batch; the 1/N is already inside ∂L/∂z, so sum them.":
            [right[0], dh.mean(0), right[2], dz.mean(keepdims=True)],
        "the 1/N of the mean loss is missing: ∂L/∂z_i = (σ(z_i) − y_i)/N.": [g * len(y) for g in right],
        "the signs are flipped: ∂L/∂z = σ(z) − y, prediction minus label.": [-g for g in right],
    }
    if W1.shape[0] == W1.shape[1]:
        mistakes["dW1 is transposed: it must have W1's shape [inputs, hidden], which is xᵀ · (error "
                 "of the hidden layer)."] = [dh.T @ x, *right[1:]]
    return right, mistakes


def _reference_gradients(x, y, W1, b1, W2, b2) -> list[np.ndarray]:
    """The same gradients by tf.GradientTape through Keras's loss, the check's reference."""
    params = [tf.constant(p) for p in (W1, b1, W2, b2)]
    with tf.GradientTape() as tape:
        tape.watch(params)
        h = tf.nn.relu(tf.matmul(x, params[0]) + params[1])
        z = (tf.matmul(h, params[2]) + params[3])[:, 0]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z))
    return [g.numpy() for g in tape.gradient(loss, params)]


@register("02-two_layer_gradients")
def check_two_layer_gradients(two_layer_gradients, rng: np.random.Generator) -> str:
    # (batch, inputs, hidden); the square one tells xᵀ·δ from its transpose
    for batch, inputs, hidden in [(1, 1, 1), (6, 3, 3), (8, 2, 16), (16, 4, 7)]:
        for dtype in FLOAT_TYPES:
            x = rng.normal(size=(batch, inputs)).astype(dtype)
            y = rng.integers(0, 2, size=batch).astype(dtype)
            W1 = rng.normal(size=(inputs, hidden)).astype(dtype)
            b1 = rng.normal(scale=0.5, size=hidden).astype(dtype)
            W2 = rng.normal(size=(hidden, 1)).astype(dtype)
            b2 = rng.normal(size=1).astype(dtype)
            what = (f"two_layer_gradients for {dtype.__name__} x of shape {x.shape}, W1 {W1.shape}, "
                    f"W2 {W2.shape}")
            got = call(two_layer_gradients, *(tf.constant(v) for v in (x, y, W1, b1, W2, b2)), what=what)
            if not isinstance(got, (list, tuple)) or len(got) != 4:
                raise CheckFailed(f"{what} returned {type(got).__name__}"
                                  f"{f' of length {len(got)}' if isinstance(got, (list, tuple)) else ''}; "
                                  "return a list of four gradients [dW1, db1, dW2, db2].")
            expected = _reference_gradients(x, y, W1, b1, W2, b2)
            right, mistakes = _two_layer_parts(x, y, W1, b1, W2, b2)
            for k, name in enumerate(PARAMETER_NAMES):
                out = f"{name} from {what}"
                value = to_numpy(got[k], out)
                if value.shape != expected[k].shape:
                    raise CheckFailed(f"{out} has shape {value.shape}; a gradient has its parameter's "
                                      f"shape, {expected[k].shape}.")
                expect_dtype(value, dtype, out)
                expect_close(value, expected[k], out, reference="tf.GradientTape through the same network",
                             rtol=1e-4 if dtype == np.float32 else 1e-9,
                             atol=1e-6 if dtype == np.float32 else 1e-12,
                             likely_causes={cause: wrong[k] for cause, wrong in mistakes.items()})
    return ("dW1, db1, dW2 and db2 match tf.GradientTape for hidden layers of 1 to 16 units, "
            "float32 and float64.")


# --- one epoch of mini-batch SGD ------------------------------------------------------------

# (examples, inputs, hidden units, batch size): a partial last batch, batches that divide the
# data, one batch larger than the data, and batches of one
EPOCH_CASES = [(10, 2, 3, 3), (8, 3, 4, 4), (5, 2, 3, 8), (7, 2, 2, 1)]
EPOCH_TOOLS = ("tf.random.experimental.stateless_shuffle(tf.range(n), seed) gives such an order, the same "
               "one every time for the same seed")


def _net_loss(x, y, params):
    """Mean binary cross-entropy of the lesson's network, z = relu(x W1 + b1) W2 + b2, by TensorFlow."""
    W1, b1, W2, b2 = params
    z = (tf.matmul(tf.nn.relu(tf.matmul(x, W1) + b1), W2) + b2)[:, 0]
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z))


def _keras_epoch(params, x, y, batches, learning_rate, weight_decay, *, start_gradients=False, scale=None):
    """The parameters after one keras.optimizers.SGD(learning_rate, weight_decay) step per batch
    (index arrays, in order), each with the tf.GradientTape gradient at the current parameters.

    ``start_gradients`` takes every gradient at the starting parameters and ``scale`` multiplies
    each batch's gradient by a number of that batch: two wrong versions, for the messages. One
    optimizer and one set of variables per shapes is built once and reused (see built_once)."""
    shapes = [p.shape for p in params]

    def make():
        variables = [tf.Variable(np.zeros(shape, np.float32)) for shape in shapes]
        optimizer = keras.optimizers.SGD()
        optimizer.build(variables)
        return optimizer, variables, [v.numpy() for v in optimizer.variables]

    optimizer, variables, new = built_once(make, "sgd_epoch", *shapes)
    optimizer.set_weights(new)
    optimizer.learning_rate, optimizer.weight_decay = learning_rate, weight_decay
    for variable, p in zip(variables, params):
        variable.assign(p)
    start = [tf.constant(p) for p in params]
    for batch in batches:
        xb, yb = tf.constant(x[batch]), tf.constant(y[batch])
        with tf.GradientTape() as tape:
            tape.watch(start)
            loss = _net_loss(xb, yb, start if start_gradients else variables)
        grads = tape.gradient(loss, start if start_gradients else variables)
        if scale is not None:
            grads = [g * scale(batch) for g in grads]
        optimizer.apply_gradients(zip(grads, variables))
    return [v.numpy() for v in variables]


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _epoch_causes(params, x, y, order, batch_size, lr, wd) -> dict:
    """The parameters the usual mistakes give, visiting the examples in ``order``: computed only
    if the answer is wrong."""
    batches = _batches(order, batch_size)
    n = len(order)
    causes = {
        "the last, smaller batch is skipped: when batch_size does not divide N, the examples left "
        "over still form a batch of their own.":
            lambda: _keras_epoch(params, x, y, [b for b in batches if len(b) == batch_size], lr, wd),
        "the labels are not reordered with the inputs: take the same rows of x and of y.":
            lambda: _keras_epoch_unpaired(params, x, y, order, batch_size, lr, wd),
        "every batch's gradient is taken at the starting parameters: compute each one at the "
        "parameters the previous step left.":
            lambda: _keras_epoch(params, x, y, batches, lr, wd, start_gradients=True),
        "the epoch takes a single step: take one step per batch.":
            lambda: _keras_epoch(params, x, y, [order], lr, wd),
        "the batch gradients are sums over their examples: each is the gradient of the batch's "
        "mean loss, which two_layer_gradients already gives.":
            lambda: _keras_epoch(params, x, y, batches, lr, wd, scale=len),
        "the weight decay is missing: each step is your sgd_step with weight_decay.":
            lambda: _keras_epoch(params, x, y, batches, lr, 0.0),
    }
    if n % batch_size == 0:
        del causes[next(iter(causes))]
    return causes


def _keras_epoch_unpaired(params, x, y, order, batch_size, lr, wd):
    """Batches of x in ``order`` with the labels taken in their original order."""
    y_in_place = np.empty_like(y)
    y_in_place[order] = y  # so that y_in_place[order[k]] = y[k]
    return _keras_epoch(params, x, y_in_place, _batches(order, batch_size), lr, wd)


def _epoch_order(result, n: int, what: str) -> tuple[list, np.ndarray]:
    """The (new params, order) pair an sgd_epoch answer returns, checked for form."""
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise CheckFailed(f"{what} returned {type(result).__name__}; return the pair (new params, order), "
                          "order being the permutation of 0 … N−1 the epoch used.")
    new, order = result
    if not isinstance(new, (list, tuple)) or len(new) != 4:
        raise CheckFailed(f"the new params from {what} are not a list of four tensors [W1, b1, W2, b2].")
    order = to_numpy(order, f"the order from {what}")
    if order.shape != (n,):
        raise CheckFailed(f"the order from {what} has shape {order.shape}; it lists the N = {n} examples in "
                          f"the order the epoch visited them, shape ({n},).")
    if not np.array_equal(np.sort(order), np.arange(n)):
        counts = np.bincount(order.astype(int).clip(0, n), minlength=n + 1)[:n]
        missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        raise CheckFailed(
            f"the order from {what} is {order.tolist()}, not a permutation of 0 … {n - 1}: "
            f"{'examples ' + str(missing.tolist()) + ' never visited' if missing.size else ''}"
            f"{', ' if missing.size and repeated.size else ''}"
            f"{'examples ' + str(repeated.tolist()) + ' visited twice' if repeated.size else ''}. "
            "An epoch visits every example exactly once: shuffle the indices 0 … N−1, do not draw them "
            f"at random with replacement. {EPOCH_TOOLS}.")
    return list(new), order.astype(np.int64)


@register("02-sgd_epoch")
def check_sgd_epoch(sgd_epoch, rng: np.random.Generator) -> str:
    orders = {}  # (case, epoch) -> order
    for case, (n, inputs, hidden, batch_size) in enumerate(EPOCH_CASES):
        x = rng.normal(size=(n, inputs)).astype(np.float32)
        y = (np.arange(n) % 2)[rng.permutation(n)].astype(np.float32)
        params = [rng.normal(size=(inputs, hidden)), rng.normal(scale=0.5, size=hidden),
                  rng.normal(size=(hidden, 1)), rng.normal(scale=0.5, size=1)]
        params = [p.astype(np.float32) for p in params]
        lr = float(rng.uniform(0.2, 0.8))
        wd = 0.0 if case == 1 else float(rng.uniform(0.05, 0.3))
        run = int(rng.integers(0, 10_000))
        for epoch in (0, 1, 0):
            seed = [run, epoch]
            what = (f"sgd_epoch(params, x, y, batch_size={batch_size}, learning_rate={lr:.3g}, "
                    f"weight_decay={wd:.3g}, seed={seed}) with N = {n} examples")
            result = call(sgd_epoch, [tf.constant(p) for p in params], tf.constant(x), tf.constant(y), batch_size,
                          lr, wd, seed, what=what)
            new, order = _epoch_order(result, n, what)
            if (case, epoch) in orders and not np.array_equal(orders[case, epoch], order):
                raise CheckFailed(
                    f"{what} visited the examples in the order {order.tolist()}, but in the order "
                    f"{orders[case, epoch].tolist()} the first time, with the same seed. The order must "
                    f"depend on the seed alone, so that a run can be repeated: {EPOCH_TOOLS}.")
            orders[case, epoch] = order
            expected = _keras_epoch(params, x, y, _batches(order, batch_size), lr, wd)
            causes = _epoch_causes(params, x, y, order, batch_size, lr, wd)
            for k, name in enumerate(("W1", "b1", "W2", "b2")):
                out = f"the new {name} from {what}"
                got = to_numpy(new[k], out)
                expect_close(got, expected[k], out,
                             reference=("keras.optimizers.SGD replaying your order, one step per batch (your "
                                        "epoch runs your two_layer_gradients and sgd_step: pass their checks "
                                        "first)"),
                             rtol=1e-4, atol=1e-5,
                             likely_causes={cause: (lambda make=make, k=k: make()[k]) for cause, make in causes.items()})
    if all(np.array_equal(order, np.arange(len(order))) for order in orders.values()):
        raise CheckFailed("sgd_epoch visits the examples in their stored order, 0, 1, 2, …, every epoch: shuffle "
                          f"them first, so that the batches differ from epoch to epoch. {EPOCH_TOOLS}.")
    if all(np.array_equal(orders[case, 0], orders[case, 1]) for case in range(len(EPOCH_CASES))):
        raise CheckFailed("sgd_epoch visits the examples in the same order for the seeds [run, 0] and [run, 1]: "
                          "each epoch needs a fresh order, drawn from its own seed. "
                          f"{EPOCH_TOOLS}.")
    return ("visits every example once per epoch, in an order fixed by the seed and fresh for each epoch, "
            "in batches with a smaller last one, and matches one keras.optimizers.SGD step per batch, for "
            "4 data and batch sizes.")


# --- Adam ----------------------------------------------------------------------------------


def _keras_adam_steps(theta, grads, learning_rate, beta_1, beta_2, epsilon) -> list[np.ndarray]:
    """θ after each step of keras.optimizers.Adam fed the same gradients."""
    settings = {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}
    return [step[0] for step in _keras_steps(keras.optimizers.Adam, settings, [theta], [[g] for g in grads])]


def _adam_mistakes(theta, m, v, g, t, lr, beta_1, beta_2, eps) -> dict:
    """θ after one step for the usual mistakes, from the same state."""
    m_new, v_new = beta_1 * m + (1 - beta_1) * g, beta_2 * v + (1 - beta_2) * g * g
    m_hat, v_hat = m_new / (1 - beta_1**t), v_new / (1 - beta_2**t)
    return {
        "the bias correction is missing: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ, which matters most "
        "in the first steps, when m and v start from 0.": theta - lr * m_new / (np.sqrt(v_new) + eps),
        "the square root of v̂ is missing: the step is η m̂ / (√v̂ + ε).": theta - lr * m_hat / (v_hat + eps),
        "the step goes up the gradient: subtract η m̂ / (√v̂ + ε).": theta + lr * m_hat / (np.sqrt(v_hat) + eps),
    }


@register("02-adam_step")
def check_adam_step(adam_step, rng: np.random.Generator) -> str:
    settings = [(0.1, 0.9, 0.999), (0.01, 0.8, 0.99), (float(rng.uniform(0.01, 0.3)), 0.5, 0.9)]
    for lr, beta_1, beta_2 in settings:
        eps = 1e-7
        shape = tuple(int(s) for s in rng.integers(1, 5, size=int(rng.integers(1, 3))))
        theta = rng.normal(size=shape).astype(np.float32)
        # gradients at least 0.1 in size: there Keras's ε placement and the paper's agree to ~1e-6
        grads = [(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)).astype(np.float32)
                 for _ in range(4)]
        expected = _keras_adam_steps(theta, grads, lr, beta_1, beta_2, eps)
        state = (tf.constant(theta), tf.zeros(shape), tf.zeros(shape))
        m_ref, v_ref = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for t, (g, e) in enumerate(zip(grads, expected), start=1):
            what = (f"adam_step(theta, grad, m, v, t={t}, learning_rate={lr:.3g}, beta_1={beta_1}, "
                    f"beta_2={beta_2})")
            before = [s.numpy() if tf.is_tensor(s) else np.asarray(s) for s in state]
            out = call(adam_step, state[0], tf.constant(g), state[1], state[2], t, lr, beta_1, beta_2, eps,
                       what=what)
            if not isinstance(out, (list, tuple)) or len(out) != 3:
                raise CheckFailed(f"{what} returned a {type(out).__name__}; return the tuple "
                                  "(new theta, new m, new v).")
            got = [to_numpy(o, f"{name} from {what}") for name, o in zip(("theta", "m", "v"), out)]
            m_ref = beta_1 * m_ref + (1 - beta_1) * g
            v_ref = beta_2 * v_ref + (1 - beta_2) * g * g
            expect_close(got[1], m_ref, f"the new m from {what}", reference="m ← β₁ m + (1 − β₁) g",
                         rtol=1e-5, atol=1e-6, likely_causes={
                             "m must be a running average: m ← β₁ m + (1 − β₁) g (the weights add up to 1).":
                                 beta_1 * before[1] + g})
            expect_close(got[2], v_ref, f"the new v from {what}", reference="v ← β₂ v + (1 − β₂) g²",
                         rtol=1e-5, atol=1e-6, likely_causes={
                             "v averages the squared gradient: v ← β₂ v + (1 − β₂) g².":
                                 beta_2 * before[2] + (1 - beta_2) * g,
                             "v averages the squared gradient g², not |g|: v ← β₂ v + (1 − β₂) g².":
                                 beta_2 * before[2] + (1 - beta_2) * np.abs(g)})
            expect_close(got[0], e, f"the new theta from {what}", reference="keras.optimizers.Adam",
                         rtol=1e-5, atol=1e-5,
                         likely_causes=_adam_mistakes(before[0], before[1], before[2], g, t, lr, beta_1,
                                                      beta_2, eps))
            state = out
    return "matches keras.optimizers.Adam over 4 steps for 3 settings of η, β₁ and β₂, with m and v."

"""Lesson 02's wrong answers (run by tests/test_checks.py), harmless variants, and message causes."""
import keras
import numpy as np
import tensorflow as tf

from utils import checks

SEEDS = [0, 1, 2]
EPS = 1e-7


def bce_terms(y, p):
    """y·log p + (1−y)·log(1−p) per example, with p clipped like Keras."""
    p = tf.clip_by_value(p, EPS, 1 - EPS)
    return y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)


def stable_terms(y, z):
    return tf.maximum(z, 0.0) - z * y + tf.math.log1p(tf.exp(-tf.abs(z)))


def naive_where_logits(y, z):
    """Right values, but the discarded branch overflows and poisons the gradient."""
    positive = z - z * y + tf.math.log(1.0 + tf.exp(-z))
    negative = -z * y + tf.math.log(1.0 + tf.exp(z))
    return tf.reduce_mean(tf.where(z >= 0, positive, negative))


def sgd_with(update):
    return lambda params, grads, lr, wd: [update(p, g, lr, wd) for p, g in zip(params, grads)]


def gradients_with(hidden_error=None, bias=tf.reduce_sum, scale=1.0, mean=True, transpose_dW1=False):
    """Backprop through the lesson's two-layer net, with one step done wrong on purpose."""
    def right_error(dz, a, W2):
        return dz[:, None] * tf.transpose(W2) * tf.cast(a > 0, a.dtype)

    def gradients(x, y, W1, b1, W2, b2):
        a = x @ W1 + b1
        h = tf.nn.relu(a)
        z = (h @ W2 + b2)[:, 0]
        dz = scale * (tf.math.sigmoid(z) - y)
        if mean:
            dz = dz / tf.cast(tf.size(y), x.dtype)
        dh = (hidden_error or right_error)(dz, a, W2)
        dW1 = tf.transpose(dh) @ x if transpose_dW1 else tf.transpose(x) @ dh
        return [dW1, bias(dh, axis=0), tf.transpose(h) @ dz[:, None], bias(dz, axis=0, keepdims=True)]
    return gradients


def adam_with(m_rule=None, v_rule=None, correct=True, root=tf.sqrt, sign=-1.0):
    """One Adam step, with one part done wrong on purpose."""
    def adam_step(theta, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
        m = (m_rule or (lambda m, g, b: b * m + (1 - b) * g))(m, grad, beta_1)
        v = (v_rule or (lambda v, g, b: b * v + (1 - b) * g * g))(v, grad, beta_2)
        m_hat, v_hat = (m / (1 - beta_1**t), v / (1 - beta_2**t)) if correct else (m, v)
        return theta + sign * learning_rate * m_hat / (root(v_hat) + epsilon), m, v
    return adam_step


MUTANTS = {
    "02-dense": {
        "bias missing": lambda x, W, b, activation: activation(x @ W),
        "bias added after the activation": lambda x, W, b, activation: activation(x @ W) + b,
        "activation ignored": lambda x, W, b, activation: x @ W + b,
        "W transposed": lambda x, W, b, activation: activation(x @ tf.transpose(W) + b),
        "always float32": lambda x, W, b, activation: activation(tf.cast(x, tf.float32) @ tf.cast(W, tf.float32)
                                                                 + tf.cast(b, tf.float32)),
        "always relu": lambda x, W, b, activation: tf.nn.relu(x @ W + b),
    },
    "02-binary_cross_entropy": {
        "sum instead of mean": lambda y, p: -tf.reduce_sum(bce_terms(y, p)),
        "minus sign missing": lambda y, p: tf.reduce_mean(bce_terms(y, p)),
        "no (1 − y) term": lambda y, p: -tf.reduce_mean(y * tf.math.log(tf.clip_by_value(p, EPS, 1 - EPS))),
        "terms swapped": lambda y, p: -tf.reduce_mean(bce_terms(1 - y, p)),
        "no clipping: inf at 0 and 1":
            lambda y, p: -tf.reduce_mean(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)),
        "epsilon too large": lambda y, p: -tf.reduce_mean(
            y * tf.math.log(tf.clip_by_value(p, 1e-3, 1 - 1e-3))
            + (1 - y) * tf.math.log(1 - tf.clip_by_value(p, 1e-3, 1 - 1e-3))),
        "per-example losses, not averaged": lambda y, p: -bce_terms(y, p),
        "log10": lambda y, p: -tf.reduce_mean(bce_terms(y, p)) / np.log(10.0),
    },
    "02-binary_cross_entropy_from_logits": {
        "sum instead of mean": lambda y, z: tf.reduce_sum(stable_terms(y, z)),
        "through clipped probabilities": lambda y, z: -tf.reduce_mean(bce_terms(y, tf.math.sigmoid(z))),
        "naive log(1 + exp(−z))": lambda y, z: tf.reduce_mean(z - z * y + tf.math.log(1.0 + tf.exp(-z))),
        "tf.where with an overflowing discarded branch": naive_where_logits,
        "labels flipped": lambda y, z: tf.reduce_mean(stable_terms(1 - y, z)),
        "max term missing": lambda y, z: tf.reduce_mean(-z * y + tf.math.log1p(tf.exp(-tf.abs(z)))),
        "logits used as probabilities": lambda y, z: -tf.reduce_mean(bce_terms(y, z)),
    },
    "02-sgd_step": {
        "weight-decay term missing": sgd_with(lambda p, g, lr, wd: p - lr * g),
        "decay applied after the step": sgd_with(lambda p, g, lr, wd: (p - lr * g) * (1 - lr * wd)),
        "decay not scaled by the learning rate": sgd_with(lambda p, g, lr, wd: p - lr * g - wd * p),
        "gradient ascent": sgd_with(lambda p, g, lr, wd: p + lr * g - lr * wd * p),
        "decay with the wrong sign": sgd_with(lambda p, g, lr, wd: p - lr * g + lr * wd * p),
        "decay applied to the gradient": sgd_with(lambda p, g, lr, wd: p - lr * g - lr * wd * g),
        "returns only the first parameter": lambda params, grads, lr, wd: params[0] - lr * grads[0],
        "only the first parameter is updated":
            lambda params, grads, lr, wd: [params[0] - lr * grads[0] - lr * wd * params[0], *params[1:]],
    },
    "02-two_layer_gradients": {
        "ReLU derivative missing": gradients_with(hidden_error=lambda dz, a, W2: dz[:, None] * tf.transpose(W2)),
        "W2 not used for the hidden error": gradients_with(
            hidden_error=lambda dz, a, W2: dz[:, None] * tf.cast(a > 0, a.dtype)),
        "dW1 transposed": gradients_with(transpose_dW1=True),
        "bias gradients averaged": gradients_with(bias=tf.reduce_mean),
        "1/N missing": gradients_with(mean=False),
        "label minus prediction": gradients_with(scale=-1.0),
        "returns three gradients": lambda *args: gradients_with()(*args)[:3],
    },
    "02-adam_step": {
        "no bias correction": adam_with(correct=False),
        "v averages g, not g²": adam_with(v_rule=lambda v, g, b: b * v + (1 - b) * tf.abs(g)),
        "m not a running average": adam_with(m_rule=lambda m, g, b: b * m + g),
        "no square root": adam_with(root=lambda v: v),
        "gradient ascent": adam_with(sign=1.0),
        "returns only theta": lambda theta, grad, m, v, t, lr, b1, b2, eps: theta - lr * grad,
    },
}


def test_reasonable_variants_pass():
    """Answers that differ from the solution only in harmless ways are accepted."""
    variants = {
        "02-dense": lambda x, W, b, activation: activation(tf.einsum("bi,iu->bu", x, W) + b[None, :]),
        # ε inside the log instead of clipping: ≈1% off Keras at exact 0 and 1, still fine
        "02-binary_cross_entropy": lambda y, p: -tf.reduce_mean(
            y * tf.math.log(p + EPS) + (1 - y) * tf.math.log(1 - p + EPS)),
        "02-binary_cross_entropy_from_logits":
            lambda y, z: tf.reduce_mean(tf.nn.softplus(z) - z * y),
        "02-sgd_step": lambda params, grads, lr, wd: tuple(
            (1 - lr * wd) * p - lr * g for p, g in zip(params, grads)),
    }
    for exercise, answer in variants.items():
        for seed in SEEDS:
            result = checks.run(exercise, answer, seed=seed)
            assert result.status == "passed", f"{exercise}, seed {seed}: {result.message}"


def test_keras_decays_before_the_step_with_the_same_result():
    """The check's reference: SGD(weight_decay) gives θ − η∇L − ηλθ exactly."""
    theta, grad = np.array([2.0, -1.0], np.float32), np.array([0.5, 0.25], np.float32)
    variable = tf.Variable(theta)
    keras.optimizers.SGD(learning_rate=0.5, weight_decay=0.1).apply_gradients([(tf.constant(grad), variable)])
    np.testing.assert_allclose(variable.numpy(), theta - 0.5 * grad - 0.5 * 0.1 * theta, rtol=1e-6)


def test_messages_name_the_likely_cause():
    def message(exercise, mutant):
        return checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message

    assert "mean" in message("02-binary_cross_entropy", "sum instead of mean")
    assert "clip" in message("02-binary_cross_entropy", "no clipping: inf at 0 and 1")
    assert "1e-7" in message("02-binary_cross_entropy", "epsilon too large")
    assert "tf.reduce_mean" in message("02-binary_cross_entropy", "per-example losses, not averaged")
    assert "capped near 16" in message("02-binary_cross_entropy_from_logits", "through clipped probabilities")
    assert "stable form" in message("02-binary_cross_entropy_from_logits", "naive log(1 + exp(−z))")
    assert "tf.where" in message("02-binary_cross_entropy_from_logits",
                                 "tf.where with an overflowing discarded branch")
    assert "weight-decay term" in message("02-sgd_step", "weight-decay term missing")
    assert "already-updated" in message("02-sgd_step", "decay applied after the step")
    assert "not scaled by the learning rate" in message("02-sgd_step", "decay not scaled by the learning rate")
    assert "before adding b" in message("02-dense", "bias added after the activation")
    assert "transposed" in message("02-dense", "W transposed")
    assert "ReLU derivative" in message("02-two_layer_gradients", "ReLU derivative missing")
    assert "dW1 is transposed" in message("02-two_layer_gradients", "dW1 transposed")
    assert "sum them" in message("02-two_layer_gradients", "bias gradients averaged")
    assert "bias correction" in message("02-adam_step", "no bias correction")
    assert "squared gradient" in message("02-adam_step", "v averages g, not g²")

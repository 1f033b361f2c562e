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


def n_of(z):
    return tf.cast(tf.size(z), z.dtype)


def sigmoid_slope(z):
    p = tf.math.sigmoid(z)
    return p * (1 - p)


def unsimplified_gradient(y, z):
    """∂L/∂ŷ · ∂ŷ/∂z written out as two factors: right until σ(z) rounds to 0 or 1."""
    p = tf.math.sigmoid(z)
    return (p - y) / (p * (1 - p)) * sigmoid_slope(z) / n_of(z)


def epoch_with(order=None, drop_last=False, unpaired=False, start_gradients=False, summed=False, decay=True):
    """One epoch of mini-batch SGD on the lesson's network, with one step done wrong on purpose."""
    gradients = gradients_with()
    step = sgd_with(lambda p, g, lr, wd: p - lr * g - lr * wd * p)
    shuffle = order or (lambda n, seed: tf.random.experimental.stateless_shuffle(tf.range(n), seed=seed))

    def sgd_epoch(params, x, y, batch_size, learning_rate, weight_decay, seed):
        n = x.shape[0]
        visit = shuffle(n, seed)
        start = params
        last = n - n % batch_size if drop_last else n
        for first in range(0, last, batch_size):
            batch = visit[first:first + batch_size]
            y_batch = y[first:first + batch_size] if unpaired else tf.gather(y, batch)
            grads = gradients(tf.gather(x, batch), y_batch, *(start if start_gradients else params))
            if summed:
                grads = [g * tf.cast(tf.size(batch), g.dtype) for g in grads]
            params = step(params, grads, learning_rate, weight_decay if decay else 0.0)
        return params, visit
    return sgd_epoch


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
    "02-bce_gradient": {
        "1/N missing": lambda y, z: tf.math.sigmoid(z) - y,
        "label minus prediction": lambda y, z: (y - tf.math.sigmoid(z)) / n_of(z),
        "σ′ multiplied in again": lambda y, z: (tf.math.sigmoid(z) - y) * sigmoid_slope(z) / n_of(z),
        "not simplified: 0/0 where σ(z) rounds to 0 or 1": unsimplified_gradient,
        "logit instead of probability": lambda y, z: (z - y) / n_of(z),
        "averaged over the batch": lambda y, z: tf.reduce_mean(tf.math.sigmoid(z) - y),
        "always float32": lambda y, z: (tf.math.sigmoid(tf.cast(z, tf.float32)) - tf.cast(y, tf.float32))
        / tf.cast(tf.size(z), tf.float32),
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
    "02-sgd_epoch": {
        "no shuffle": epoch_with(order=lambda n, seed: tf.range(n)),
        "drops the last, smaller batch": epoch_with(drop_last=True),
        "one permutation for every epoch (seed ignored)":
            epoch_with(order=lambda n, seed: tf.random.experimental.stateless_shuffle(tf.range(n), seed=[0, 0])),
        "a stateful shuffle: a new order on every call": epoch_with(order=lambda n, seed: tf.random.shuffle(tf.range(n))),
        "indices drawn with replacement": epoch_with(
            order=lambda n, seed: tf.random.stateless_uniform([n], seed=seed, maxval=n, dtype=tf.int32)),
        "labels not reordered with the inputs": epoch_with(unpaired=True),
        "every gradient at the starting parameters": epoch_with(start_gradients=True),
        "sums instead of means": epoch_with(summed=True),
        "weight decay ignored": epoch_with(decay=False),
        "returns only the parameters": lambda *args: epoch_with()(*args)[0],
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


def numpy_order_epoch(params, x, y, batch_size, learning_rate, weight_decay, seed):
    order = np.random.default_rng(list(seed)).permutation(x.shape[0])
    gradients, start = gradients_with(), 0
    while start < len(order):
        batch = order[start:start + batch_size]
        grads = gradients(tf.gather(x, batch), tf.gather(y, batch), *params)
        params = [p - learning_rate * (g + weight_decay * p) for p, g in zip(params, grads)]
        start += batch_size
    return params, tf.constant(order)


def test_reasonable_variants_pass():
    """Answers that differ from the solution only in harmless ways are accepted."""
    variants = {
        "02-dense": lambda x, W, b, activation: activation(tf.einsum("bi,iu->bu", x, W) + b[None, :]),
        # the mean's 1/N from the static shape, σ from Keras
        "02-bce_gradient": lambda y, z: (keras.activations.sigmoid(z) - y) / np.prod(z.shape),
        "02-binary_cross_entropy_from_logits":
            lambda y, z: tf.reduce_mean(tf.nn.softplus(z) - z * y),
        "02-sgd_step": lambda params, grads, lr, wd: tuple(
            (1 - lr * wd) * p - lr * g for p, g in zip(params, grads)),
        # any order fixed by the seed will do, here NumPy's; and a while loop over the batches
        "02-sgd_epoch": numpy_order_epoch,
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

    assert "1/N is missing" in message("02-bce_gradient", "1/N missing")
    assert "sign is flipped" in message("02-bce_gradient", "label minus prediction")
    assert "once too often" in message("02-bce_gradient", "σ′ multiplied in again")
    assert "cancels" in message("02-bce_gradient", "not simplified: 0/0 where σ(z) rounds to 0 or 1")
    assert "one entry per logit" in message("02-bce_gradient", "averaged over the batch")
    assert "shuffle" in message("02-sgd_epoch", "no shuffle")
    assert "smaller batch is skipped" in message("02-sgd_epoch", "drops the last, smaller batch")
    assert "fresh order" in message("02-sgd_epoch", "one permutation for every epoch (seed ignored)")
    assert "same seed" in message("02-sgd_epoch", "a stateful shuffle: a new order on every call")
    assert "with replacement" in message("02-sgd_epoch", "indices drawn with replacement")
    assert "same rows of x and of y" in message("02-sgd_epoch", "labels not reordered with the inputs")
    assert "starting parameters" in message("02-sgd_epoch", "every gradient at the starting parameters")
    assert "mean loss" in message("02-sgd_epoch", "sums instead of means")
    assert "weight decay is missing" in message("02-sgd_epoch", "weight decay ignored")
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

"""Lesson 01's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import keras
import pytest
import tensorflow as tf

from utils import checks


def naive_sigmoid(x):
    return 1.0 / (1.0 + tf.exp(-x))  # right values, NaN gradient at x = -1000


def normalised(e, axis=-1):
    return e / tf.reduce_sum(e, axis=axis, keepdims=True)


def jacobian_parts(z):
    """softmax(z), its outer product s_i s_j and diag(s), for the Jacobian mutants."""
    s = tf.nn.softmax(z)
    return s, s[:, :, None] * s[:, None, :], tf.linalg.diag(s)


MUTANTS = {
    "01-sigmoid": {
        "overflowing e^x / (1 + e^x)": lambda x: tf.exp(x) / (1.0 + tf.exp(x)),
        "NaN gradient from 1 / (1 + e^-x)": naive_sigmoid,
        "tf.where with an overflowing discarded branch":
            lambda x: tf.where(x >= 0, 1.0 / (1.0 + tf.exp(-x)), tf.exp(x) / (1.0 + tf.exp(x))),
        "sign flipped": lambda x: keras.activations.sigmoid(-x),
        "always float32": lambda x: tf.math.sigmoid(tf.cast(x, tf.float32)),
        "NumPy, not differentiable": lambda x: 1.0 / (1.0 + __import__("numpy").exp(-x.numpy().clip(-50, 50))),
        "returns nothing": lambda x: None,
    },
    "01-tanh": {
        "tf.sign kills the slope at 0":
            lambda x: tf.sign(x) * (1.0 - tf.exp(-2.0 * tf.abs(x))) / (1.0 + tf.exp(-2.0 * tf.abs(x))),
        "2σ(x) − 1 is tanh(x/2)": lambda x: 2.0 * tf.math.sigmoid(x) - 1.0,
        "overflowing textbook formula": lambda x: (tf.exp(x) - tf.exp(-x)) / (tf.exp(x) + tf.exp(-x)),
        "sigmoid instead": tf.math.sigmoid,
        "wrong shape": lambda x: tf.reshape(tf.math.tanh(x), [-1]),
    },
    "01-relu": {
        "leaky": lambda x: tf.where(x > 0, x, 0.01 * x),
        "absolute value": tf.abs,
        "relu6": tf.nn.relu6,
        "step function": lambda x: tf.cast(x > 0, x.dtype),
        "always float32": lambda x: tf.nn.relu(tf.cast(x, tf.float32)),
    },
    "01-neuron": {
        "bias missing": lambda x, w, b, activation: activation(tf.linalg.matvec(x, w)),
        "bias added after the activation": lambda x, w, b, activation: activation(tf.linalg.matvec(x, w)) + b,
        "activation ignored": lambda x, w, b, activation: tf.linalg.matvec(x, w) + b,
        "no sum over features": lambda x, w, b, activation: activation(x * w + b),
        "column output [batch, 1]": lambda x, w, b, activation: activation(x @ w[:, None] + b),
        "raises": lambda x, w, b, activation: x @ w,
    },
    "01-softmax": {
        "no max subtracted: overflows": lambda z: normalised(tf.exp(z)),
        "normalised over the first axis": lambda z: tf.nn.softmax(z, axis=0),
        "one max for the whole tensor": lambda z: normalised(tf.exp(z - tf.reduce_max(z))),
        "max without keepdims": lambda z: normalised(tf.exp(z - tf.reduce_max(z, axis=-1))),
        "not normalised": lambda z: tf.exp(z - tf.reduce_max(z, axis=-1, keepdims=True)),
        "always float32": lambda z: tf.nn.softmax(tf.cast(z, tf.float32)),
        "NumPy, not differentiable": lambda z: tf.constant(tf.nn.softmax(z).numpy()),
    },
    "01-log_softmax": {
        "log of the softmax: −inf where a probability underflows": lambda z: tf.math.log(tf.nn.softmax(z)),
        "no max subtracted: overflows": lambda z: z - tf.math.log(tf.reduce_sum(tf.exp(z), axis=-1, keepdims=True)),
        "shift not undone": lambda z: z - tf.math.log(
            tf.reduce_sum(tf.exp(z - tf.reduce_max(z, axis=-1, keepdims=True)), axis=-1, keepdims=True)),
        "log of the sum missing": lambda z: z - tf.reduce_max(z, axis=-1, keepdims=True),
        "one max for the whole tensor": lambda z: (lambda c: z - c - tf.math.log(
            tf.reduce_sum(tf.exp(z - c), axis=-1, keepdims=True)))(tf.reduce_max(z)),
        "normalised over the first axis": lambda z: tf.nn.log_softmax(z, axis=0),
        "sum without keepdims": lambda z: z - tf.reduce_logsumexp(z, axis=-1),
        "always float32": lambda z: tf.nn.log_softmax(tf.cast(z, tf.float32)),
        "NumPy, not differentiable": lambda z: tf.constant(tf.nn.log_softmax(z).numpy()),
    },
    "01-softmax_jacobian": {
        "diagonal only, s(1 − s)": lambda z: tf.linalg.diag(tf.nn.softmax(z) * (1 - tf.nn.softmax(z))),
        "diagonal term missing": lambda z: -jacobian_parts(z)[1],
        "sign flipped": lambda z: jacobian_parts(z)[1] - jacobian_parts(z)[2],
        "formula in the logits": lambda z: tf.linalg.diag(z) - z[:, :, None] * z[:, None, :],
        "one matrix for the batch": lambda z: tf.reduce_sum(jacobian_parts(z)[2] - jacobian_parts(z)[1], axis=0),
        "naive softmax overflows": lambda z: (lambda s: tf.linalg.diag(s) - s[:, :, None] * s[:, None, :])(
            normalised(tf.exp(z))),
    },
}


# (exercise, mutant, words its message must hold): the likely cause, named so a learner can act on it.
CAUSES = [
    ("01-tanh", "tf.sign kills the slope at 0", ["tf.sign", "x = 0"]),
    ("01-sigmoid", "tf.where with an overflowing discarded branch", ["tf.where", "NaN"]),
    ("01-neuron", "bias added after the activation", ["before adding b"]),
    ("01-relu", "always float32", ["float32 for float64 input"]),
    ("01-softmax", "no max subtracted: overflows", ["subtract the row's max"]),
    ("01-softmax", "one max for the whole tensor", ["each row's own max"]),
    ("01-softmax", "normalised over the first axis", ["last axis"]),
    ("01-log_softmax", "log of the softmax: −inf where a probability underflows", ["underflowed"]),
    ("01-log_softmax", "no max subtracted: overflows", ["overflows"]),
    ("01-log_softmax", "shift not undone", ["subtract c as well"]),
    ("01-log_softmax", "one max for the whole tensor", ["each row's own max"]),
    ("01-softmax_jacobian", "diagonal only, s(1 − s)", ["only the diagonal"]),
    ("01-softmax_jacobian", "diagonal term missing", ["diagonal term is missing"]),
]


@pytest.mark.parametrize("exercise,mutant,words", CAUSES, ids=[f"{e}: {m}" for e, m, _ in CAUSES])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant]).message
    for word in words:
        assert word in message, message

"""Lesson 01's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import keras
import tensorflow as tf

from utils import checks


def naive_sigmoid(x):
    return 1.0 / (1.0 + tf.exp(-x))  # right values, NaN gradient at x = -1000


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
}


def test_messages_name_the_likely_cause():
    sign = checks.run("01-tanh", MUTANTS["01-tanh"]["tf.sign kills the slope at 0"]).message
    assert "tf.sign" in sign and "x = 0" in sign
    where = checks.run("01-sigmoid", MUTANTS["01-sigmoid"]["tf.where with an overflowing discarded branch"]).message
    assert "tf.where" in where and "NaN" in where
    bias = checks.run("01-neuron", MUTANTS["01-neuron"]["bias added after the activation"]).message
    assert "before adding b" in bias
    dtype = checks.run("01-relu", MUTANTS["01-relu"]["always float32"]).message
    assert "float32 for float64 input" in dtype

"""Lesson 07's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from utils import checks



def softmax_with(ignore_mask=False, axis=-1, zero_after=False, inverted=False):
    """A masked softmax with one chosen mistake built in (the defaults make the right one)."""

    def masked_softmax(scores, mask):
        keep = tf.cast(mask, scores.dtype)[:, None, :]
        if inverted:
            keep = 1.0 - keep
        if ignore_mask:
            return tf.nn.softmax(scores, axis=axis)
        if zero_after:
            return tf.nn.softmax(scores, axis=axis) * keep
        return tf.nn.softmax(scores - 1e9 * (1.0 - keep), axis=axis)

    return masked_softmax


def luong_with(softmax=None, scaled=False, swap=False, mix_queries=False):
    softmax = softmax or softmax_with()

    def luong_attention(query, value, value_mask):
        scores = tf.matmul(query, value, transpose_b=True)
        if scaled:
            scores /= np.sqrt(query.shape[-1])
        weights = softmax(scores, value_mask)
        context = tf.matmul(weights, value)
        if mix_queries:
            context = tf.matmul(weights, value) * 0 + tf.reduce_mean(query, axis=1, keepdims=True)
        return (weights, context) if swap else (context, weights)

    return luong_attention


def bahdanau_with(softmax=None, tanh=True, key_first=False, no_v=False):
    softmax = softmax or softmax_with()

    class BahdanauAttention(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, query_shape, value_shape):
            shapes = {"q": (query_shape[-1], self.units), "k": (value_shape[-1], self.units)}
            for name in ("kq" if key_first else "qk"):
                setattr(self, "W_" + name, self.add_weight(shape=shapes[name], initializer="glorot_uniform"))
            self.v = self.add_weight(shape=(self.units,), initializer="ones")

        def call(self, query, value, mask=None):
            summed = (query @ self.W_q)[:, :, None, :] + (value @ self.W_k)[:, None, :, :]
            hidden = tf.tanh(summed) if tanh else summed
            scores = tf.reduce_sum(hidden if no_v else self.v * hidden, axis=-1)
            weights = softmax(scores, mask)
            return weights @ value, weights

    return BahdanauAttention


MUTANTS = {
    "07-masked_softmax": {
        "mask ignored": softmax_with(ignore_mask=True),
        "softmax over the queries": softmax_with(axis=1),
        "zeroed after the softmax": softmax_with(zero_after=True),
        "mask inverted": softmax_with(inverted=True),
    },
    "07-luong_attention": {
        "mask ignored": luong_with(softmax_with(ignore_mask=True)),
        "softmax over the queries": luong_with(softmax_with(axis=1)),
        "scaled by sqrt(d)": luong_with(scaled=True),
        "returns (weights, context)": luong_with(swap=True),
        "context from the queries": luong_with(mix_queries=True),
    },
    "07-BahdanauAttention": {
        "mask ignored": bahdanau_with(softmax_with(ignore_mask=True)),
        "softmax over the queries": bahdanau_with(softmax_with(axis=1)),
        "no tanh": bahdanau_with(tanh=False),
        "W_key created first": bahdanau_with(key_first=True),
        "v left out": bahdanau_with(no_v=True),
    },
}


def test_right_answers_written_here_pass():
    """The mutant builders with no mistake are right, so each mutant differs by one mistake."""
    for exercise, answer in [("07-masked_softmax", softmax_with()), ("07-luong_attention", luong_with()),
                             ("07-BahdanauAttention", bahdanau_with())]:
        result = checks.run(exercise, answer, seed=0)
        assert result.status == "passed", f"{exercise}: {result.message}"


@pytest.mark.parametrize("exercise,mutant,words", [
    ("07-masked_softmax", "mask ignored", "the mask is ignored"),
    ("07-masked_softmax", "softmax over the queries", "wrong axis"),
    ("07-masked_softmax", "zeroed after the softmax", "after the softmax"),
    ("07-masked_softmax", "mask inverted", "wrong way round"),
    ("07-luong_attention", "mask ignored", "the mask is ignored"),
    ("07-luong_attention", "scaled by sqrt(d)", "√d"),
    ("07-luong_attention", "softmax over the queries", "wrong axis"),
    ("07-BahdanauAttention", "no tanh", "no tanh"),
    ("07-BahdanauAttention", "W_key created first", "in this order"),
    ("07-BahdanauAttention", "mask ignored", "the mask is ignored"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
    assert words in message, message

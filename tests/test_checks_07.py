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


def general_with(softmax=None, w_shape="qv", transposed=False, scaled=False, no_w=False, projected_context=False):
    """A GeneralAttention layer with one chosen mistake built in (the defaults make the right one)."""
    softmax = softmax or softmax_with()

    class GeneralAttention(keras.layers.Layer):
        def build(self, query_shape, value_shape):
            dims = {"q": query_shape[-1], "v": value_shape[-1]}
            self.W = self.add_weight(shape=(dims[w_shape[0]], dims[w_shape[1]]), initializer="glorot_uniform")

        def call(self, query, value, mask=None):
            if w_shape == "vq":  # W built [value_dim, query_dim] and applied to the values
                scores = query @ tf.transpose(value @ self.W, [0, 2, 1])
            elif no_w:
                scores = query @ tf.transpose(value, [0, 2, 1])
            else:
                w = tf.transpose(self.W) if transposed else self.W
                scores = (query @ w) @ tf.transpose(value, [0, 2, 1])
            if scaled:
                scores /= np.sqrt(value.shape[-1])
            weights = softmax(scores, mask)
            if projected_context:
                return weights @ (value @ tf.transpose(self.W)), weights
            return weights @ value, weights

    return GeneralAttention


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
    "07-GeneralAttention": {
        "mask ignored": general_with(softmax_with(ignore_mask=True)),
        "softmax over the queries": general_with(softmax_with(axis=1)),
        "W built [value_dim, query_dim], applied to the values": general_with(w_shape="vq"),
        "W transposed in the score": general_with(transposed=True),
        "scaled by sqrt(d)": general_with(scaled=True),
        "W left out (the dot score)": general_with(no_w=True),
        "context mixes the projected values": general_with(projected_context=True),
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
                             ("07-GeneralAttention", general_with()), ("07-BahdanauAttention", bahdanau_with())]:
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
    ("07-GeneralAttention", "W built [value_dim, query_dim], applied to the values", "wrong way round"),
    ("07-GeneralAttention", "W transposed in the score", "wrong way round"),
    ("07-GeneralAttention", "scaled by sqrt(d)", "√d"),
    ("07-GeneralAttention", "W left out (the dot score)", "W is not used"),
    ("07-GeneralAttention", "mask ignored", "the mask is ignored"),
    ("07-BahdanauAttention", "no tanh", "no tanh"),
    ("07-BahdanauAttention", "W_key created first", "in this order"),
    ("07-BahdanauAttention", "mask ignored", "the mask is ignored"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
    assert words in message, message


def test_general_reference_agrees_with_keras_attention_on_projected_queries():
    """The check's brute-force loop of s_tᵀ W h_j is Keras's dot-product attention applied to
    the queries multiplied by W: two independent routes to the same weights and context."""
    from utils.checks import lesson07

    rng = np.random.default_rng(0)
    query, value = rng.normal(size=(3, 4, 5)).astype(np.float32), rng.normal(size=(3, 6, 2)).astype(np.float32)
    w = rng.normal(size=(5, 2)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array([6, 3, 1])[:, None]
    context, weights, _ = lesson07.general_reference(query, value, w, mask)
    keras_context, keras_weights = keras.layers.Attention()(
        [tf.constant(query @ w), tf.constant(value)], mask=[None, tf.constant(mask)], return_attention_scores=True)
    np.testing.assert_allclose(weights, keras_weights.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(context, keras_context.numpy(), rtol=1e-4, atol=1e-5)

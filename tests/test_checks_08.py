"""Lesson 08's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import functools

import keras
import numpy as np
import tensorflow as tf

from utils import checks

SEEDS = [0, 1, 2]


def attention(q, k, v, mask=None, *, scale="sqrt", axis=-1, invert=False, ignore_mask=False):
    """Scaled dot-product attention with switches for the usual mistakes."""
    d = tf.cast(tf.shape(k)[-1], q.dtype)
    divisor = {"sqrt": tf.sqrt(d), "d": d, "none": 1.0}[scale]
    scores = tf.matmul(q, k, transpose_b=True) / divisor
    if mask is not None and not ignore_mask:
        allowed = tf.cast(mask, tf.bool)
        scores = tf.where(tf.logical_not(allowed) if invert else allowed, scores, -1e9)
    weights = tf.nn.softmax(scores, axis=axis)
    return tf.matmul(weights, v), weights


def positional(length, depth, *, layout="interleaved", exponent=2.0, swap=False, dtype=np.float32):
    angles = np.arange(length)[:, None] / 10000.0 ** (exponent * np.arange(depth // 2)[None, :] / depth)
    first, second = (np.cos(angles), np.sin(angles)) if swap else (np.sin(angles), np.cos(angles))
    if layout == "halves":
        out = np.concatenate([first, second], axis=1)
    else:
        out = np.zeros((length, depth))
        out[:, 0::2], out[:, 1::2] = first, second
    return tf.constant(out.T if layout == "transposed" else out, dtype)


class MutantMHA(keras.layers.Layer):
    """Multi-head attention like keras.layers.MultiHeadAttention, with one mistake switched on."""

    def __init__(self, num_heads, key_dim, mistake=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.mistake = num_heads, key_dim, mistake

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        h, k = self.num_heads, self.key_dim
        shapes = {"q": (query_shape[-1], h, k), "key": (key_shape[-1], h, k), "v": (value_shape[-1], h, k)}
        order = ["key", "q", "v"] if self.mistake == "key weights first" else ["q", "key", "v"]
        for name in order:
            setattr(self, f"{name}_kernel", self.add_weight(shape=shapes[name], name=f"{name}_kernel"))
            setattr(self, f"{name}_bias", self.add_weight(shape=(h, k), initializer="zeros", name=f"{name}_bias"))
        self.o_kernel = self.add_weight(shape=(h, k, query_shape[-1]), name="o_kernel")
        self.o_bias = self.add_weight(shape=(query_shape[-1],), initializer="zeros", name="o_bias")

    def _project(self, x, kernel, bias):
        if self.mistake == "no biases":
            bias = bias * 0.0
        if self.mistake == "heads split wrongly":  # flat [.., heads·key_dim] split as [.., key_dim, heads]
            flat = keras.ops.einsum("btd,de->bte", x, keras.ops.reshape(kernel, (kernel.shape[0], -1)))
            flat = flat + keras.ops.reshape(bias, (-1,))
            b, t = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
            return keras.ops.transpose(keras.ops.reshape(flat, (b, t, self.key_dim, self.num_heads)), (0, 3, 1, 2))
        return keras.ops.einsum("btd,dhk->bhtk", x, kernel) + bias[:, None, :]

    def call(self, query, value, key=None, attention_mask=None, use_causal_mask=False):
        key = value if key is None else key
        q = self._project(query, self.q_kernel, self.q_bias)
        k = self._project(key, self.key_kernel, self.key_bias)
        v = self._project(value, self.v_kernel, self.v_bias)
        divisor = {"divide by key_dim": float(self.key_dim)}.get(self.mistake, float(np.sqrt(self.key_dim)))
        scores = keras.ops.einsum("bhtk,bhsk->bhts", q, k) / divisor
        allowed = keras.ops.ones_like(scores, dtype="bool")
        if attention_mask is not None and not (self.mistake == "masks not combined" and use_causal_mask):
            allowed = allowed & keras.ops.cast(attention_mask, "bool")[:, None]
        if use_causal_mask and self.mistake != "causal mask ignored":
            t, s = keras.ops.shape(query)[1], keras.ops.shape(key)[1]
            allowed = allowed & (keras.ops.arange(t)[:, None] >= keras.ops.arange(s)[None, :])
        if self.mistake == "mask inverted":
            allowed = keras.ops.logical_not(allowed)
        axis = -2 if self.mistake == "softmax over queries" else -1
        weights = tf.nn.softmax(keras.ops.where(allowed, scores, -1e9), axis=axis)
        heads = keras.ops.einsum("bhts,bhsk->bhtk", weights, v)
        if self.mistake == "heads split wrongly":
            b, t = keras.ops.shape(query)[0], keras.ops.shape(query)[1]
            heads = keras.ops.reshape(keras.ops.transpose(heads, (0, 2, 3, 1)), (b, t, self.num_heads, self.key_dim))
        else:
            heads = keras.ops.transpose(heads, (0, 2, 1, 3))
        if self.mistake == "output projection missing":
            b, t = keras.ops.shape(query)[0], keras.ops.shape(query)[1]
            return keras.ops.reshape(heads, (b, t, -1))
        return keras.ops.einsum("bthk,hkd->btd", heads, self.o_kernel) + self.o_bias


class StubMHA(keras.layers.Layer):
    """What the lesson's exercise cell holds before it is answered."""

    def __init__(self, num_heads, key_dim, **kwargs):
        super().__init__(**kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        raise NotImplementedError()

    def call(self, query, value, key=None, attention_mask=None, use_causal_mask=False):
        raise NotImplementedError()


def mha(mistake):
    return functools.partial(MutantMHA, mistake=mistake)


def block(mistake=None):
    """A Transformer block (the lesson's given sub-layers) whose call has one mistake switched on."""
    class Block(keras.layers.Layer):
        def __init__(self, d_model, num_heads, ff_units, **kwargs):
            super().__init__(**kwargs)
            self.attention = MutantMHA(num_heads, key_dim=d_model // num_heads)
            self.attention_norm = keras.layers.LayerNormalization()
            self.ff_hidden = keras.layers.Dense(ff_units, activation="relu")
            self.ff_output = keras.layers.Dense(d_model)
            self.ff_norm = keras.layers.LayerNormalization()

        def call(self, x, attention_mask=None, use_causal_mask=True):
            causal = {"causal mask dropped": False, "always causal": True}.get(mistake, use_causal_mask)
            mask = None if mistake == "attention_mask not passed on" else attention_mask
            attended = self.attention(x, x, attention_mask=mask, use_causal_mask=causal)
            if mistake == "pre-norm":
                normed = self.attention_norm(x)
                x = x + self.attention(normed, normed, attention_mask=mask, use_causal_mask=causal)
                return x + self.ff_output(self.ff_hidden(self.ff_norm(x)))
            x = self.attention_norm(attended if mistake == "no residual" else x + attended)
            fed = self.ff_output(self.ff_hidden(x))
            if mistake == "no second norm":
                return x + fed
            return self.ff_norm(fed if mistake in ("no residual", "no feed-forward residual") else x + fed)
    return Block


MUTANTS = {
    "08-scaled_dot_product_attention": {
        "scaled by d instead of √d": functools.partial(attention, scale="d"),
        "not scaled": functools.partial(attention, scale="none"),
        "softmax over the queries": functools.partial(attention, axis=-2),
        "mask inverted": functools.partial(attention, invert=True),
        "mask ignored": functools.partial(attention, ignore_mask=True),
        "weights transposed": lambda q, k, v, mask=None: (attention(q, k, v, mask)[0],
                                                          tf.linalg.matrix_transpose(attention(q, k, v, mask)[1])),
        "output only": lambda q, k, v, mask=None: attention(q, k, v, mask)[0],
        "weights times keys": lambda q, k, v, mask=None: (tf.matmul(attention(q, k, v, mask)[1], k),
                                                          attention(q, k, v, mask)[1]),
    },
    "08-causal_mask": {
        "diagonal excluded": lambda n: tf.range(n)[:, None] > tf.range(n)[None, :],
        "transposed (future only)": lambda n: tf.range(n)[:, None] <= tf.range(n)[None, :],
        "inverted": lambda n: tf.range(n)[:, None] < tf.range(n)[None, :],
        "float ones and zeros": lambda n: tf.linalg.band_part(tf.ones([n, n]), -1, 0),
        "all True": lambda n: tf.ones([n, n], tf.bool),
    },
    "08-positional_encoding": {
        "sines then cosines in halves": functools.partial(positional, layout="halves"),
        "exponent i/depth": functools.partial(positional, exponent=1.0),
        "sin and cos swapped": functools.partial(positional, swap=True),
        "float64": functools.partial(positional, dtype=np.float64),
        "transposed [depth, length]": functools.partial(positional, layout="transposed"),
    },
    "08-multi_head_attention": {
        "divides by key_dim": mha("divide by key_dim"),
        "softmax over the queries": mha("softmax over queries"),
        "heads split wrongly": mha("heads split wrongly"),
        "output projection missing": mha("output projection missing"),
        "mask inverted": mha("mask inverted"),
        "causal mask ignored": mha("causal mask ignored"),
        "attention_mask dropped when causal": mha("masks not combined"),
        "biases left out": mha("no biases"),
        "key weights created before the query's": mha("key weights first"),
    },
    "08-transformer_block": {
        "residual connections missing": block("no residual"),
        "norm before each sub-layer (pre-norm)": block("pre-norm"),
        "causal mask dropped": block("causal mask dropped"),
        "feed-forward residual missing": block("no feed-forward residual"),
        "second LayerNorm left out": block("no second norm"),
        "attention_mask not passed on": block("attention_mask not passed on"),
        "always causal (use_causal_mask ignored)": block("always causal"),
    },
}


def test_correct_mutant_class_passes():
    """The mutants' shared code is right when no mistake is switched on."""
    for seed in SEEDS:
        result = checks.run("08-multi_head_attention", mha(None), seed=seed)
        assert result.status == "passed", result.message
        assert checks.run("08-scaled_dot_product_attention", attention, seed=seed).status == "passed"
        assert checks.run("08-positional_encoding", positional, seed=seed).status == "passed"
        assert checks.run("08-transformer_block", block(None), seed=seed).status == "passed"


def test_unanswered_layer_is_not_attempted():
    result = checks.run("08-multi_head_attention", StubMHA)
    assert result.status == "not attempted", result.message


def test_messages_name_the_likely_cause():
    def message(exercise, mutant):
        return checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message

    assert "divided by d" in message("08-scaled_dot_product_attention", "scaled by d instead of √d")
    assert "over the queries" in message("08-scaled_dot_product_attention", "softmax over the queries")
    assert "mask is inverted" in message("08-scaled_dot_product_attention", "mask inverted")
    assert "expected a pair" in message("08-scaled_dot_product_attention", "output only")
    assert "diagonal" in message("08-causal_mask", "diagonal excluded")
    assert "transposed" in message("08-causal_mask", "transposed (future only)")
    assert "boolean" in message("08-causal_mask", "float ones and zeros")
    assert "interleaves" in message("08-positional_encoding", "sines then cosines in halves")
    assert "2i/depth" in message("08-positional_encoding", "exponent i/depth")
    assert "divided by key_dim" in message("08-multi_head_attention", "divides by key_dim")
    assert "heads are split wrongly" in message("08-multi_head_attention", "heads split wrongly")
    assert "output projection is missing" in message("08-multi_head_attention", "output projection missing")
    assert "mask is inverted" in message("08-multi_head_attention", "mask inverted")
    assert "residual connection is missing" in message("08-transformer_block", "residual connections missing")
    assert "pre-norm" in message("08-transformer_block", "norm before each sub-layer (pre-norm)")
    assert "use_causal_mask=True" in message("08-transformer_block", "causal mask dropped")
    assert "attention_mask is not passed on" in message("08-transformer_block", "attention_mask not passed on")
    assert "use_causal_mask=False" in message("08-transformer_block", "always causal (use_causal_mask ignored)")

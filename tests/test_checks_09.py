"""Lesson 09's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import keras
import pytest
import tensorflow as tf

from solved import Elsewhere, solution_answers
from utils import checks


def sinusoids(distances, d_model, order="sin-cos", step=2.0):
    inverse = 1.0 / 10000.0 ** (step * tf.range(d_model // 2, dtype=tf.float32) / d_model)
    angles = tf.cast(distances, tf.float32)[:, None] * inverse[None, :]
    sin, cos = tf.sin(angles), tf.cos(angles)
    if order == "interleaved":
        return tf.reshape(tf.stack([sin, cos], axis=-1), [-1, d_model])
    return tf.concat([cos, sin] if order == "cos-sin" else [sin, cos], axis=-1)


def descending(klen):
    return tf.range(klen - 1, -1, -1)


def gather_shift(x, offset=0, ascending=False):
    """rel_shift by an explicit gather, optionally off by ``offset`` columns or ascending."""
    qlen, klen = x.shape[2], x.shape[3]
    i, j = tf.range(qlen)[:, None], tf.range(klen)[None, :]
    distance = klen - qlen + i - j
    column = tf.clip_by_value((distance if ascending else klen - 1 - distance) + offset, 0, klen - 1)
    return tf.experimental.numpy.take_along_axis(x, tf.broadcast_to(column, x.shape), axis=-1)


def pad_on_the_right(x):
    batch, heads, qlen, klen = x.shape
    padded = tf.reshape(tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, 1]]), [batch, heads, klen + 1, qlen])
    return tf.reshape(padded[:, :, 1:], [batch, heads, qlen, klen])


def logits_with(shift, swap=False, scale=True, use_u=True):
    def logits(q, k, r, u, v):
        if swap:
            u, v = v, u
        content = tf.einsum("bihd,bjhd->bhij", q + (u if use_u else 0.0), k)
        position = shift(tf.einsum("bihd,jhd->bhij", q + v, r))
        total = content + position
        return total / tf.sqrt(float(q.shape[-1])) if scale else total
    return logits


def concat(memory, hidden):
    return tf.concat([memory, hidden], axis=1)


def ascending_table(klen, d_model):
    return sinusoids(tf.range(klen), d_model)


class Attention(keras.layers.Layer):
    """RelativeAttention as the lesson gives it (same weights, same order), assembled with
    deliberate mistakes; the keyword arguments pick which."""

    def __init__(self, d_model, heads, swap_uv=False, drop=(), table=None, mask="memory", keys="context", **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.heads, self.d_head = d_model, heads, d_model // heads
        self.swap_uv, self.drop, self.mask, self.keys = swap_uv, drop, mask, keys
        self.table = table or (lambda klen, d: sinusoids(descending(klen), d))
        per_head = (None, heads, self.d_head)
        self.query = keras.layers.EinsumDense("btd,dhk->bthk", per_head)
        self.key = keras.layers.EinsumDense("btd,dhk->bthk", per_head)
        self.value = keras.layers.EinsumDense("btd,dhk->bthk", per_head)
        self.position = keras.layers.EinsumDense("td,dhk->thk", (heads, self.d_head))
        self.output_projection = keras.layers.EinsumDense("bthk,hkd->btd", (None, d_model))

    def build(self, input_shape):
        for projection in (self.query, self.key, self.value):
            projection.build((None, None, self.d_model))
        self.position.build((None, self.d_model))
        self.output_projection.build((None, None, self.heads, self.d_head))
        self.u = self.add_weight(shape=(self.heads, self.d_head), initializer="zeros", name="u")
        self.v = self.add_weight(shape=(self.heads, self.d_head), initializer="zeros", name="v")

    def call(self, h, memory):
        context = concat(memory, h) if self.keys == "context" else h
        qlen, klen = h.shape[1], context.shape[1]
        q, k, values = self.query(h), self.key(context), self.value(context)
        r = self.position(self.table(klen, self.d_model))
        u, v = (self.v, self.u) if self.swap_uv else (self.u, self.v)
        logits = tf.einsum("bihd,bjhd->bhij", q + u, k)
        position = gather_shift(tf.einsum("bihd,jhd->bhij", q if "d" in self.drop else q + v, r))
        if "b" in self.drop:
            position = gather_shift(tf.einsum("hd,jhd->hj", v, r)[None, :, None, :] + 0 * logits)
        logits = (logits + position) / tf.sqrt(float(self.d_head))
        offset = {"memory": klen - qlen, "segment": 0}.get(self.mask)
        if offset is not None:
            visible = tf.range(klen)[None, :] <= offset + tf.range(qlen)[:, None]
            logits = tf.where(visible, logits, -1e9)
        weights = tf.nn.softmax(logits, axis=-1)
        return self.output_projection(tf.einsum("bhij,bjhd->bihd", weights, values))


def attention_with(**mistake):
    return lambda d_model, heads: Attention(d_model, heads, **mistake)


MUTANTS = {
    "09-relative_positional_encoding": {
        "ascending distances": lambda klen, d: sinusoids(tf.range(klen), d),
        "interleaved sin/cos": lambda klen, d: sinusoids(descending(klen), d, order="interleaved"),
        "cosine half first": lambda klen, d: sinusoids(descending(klen), d, order="cos-sin"),
        "10000^(k/d) frequencies": lambda klen, d: sinusoids(descending(klen), d, step=1.0),
        "distances klen … 1": lambda klen, d: sinusoids(descending(klen) + 1, d),
        "transposed": lambda klen, d: tf.transpose(sinusoids(descending(klen), d)),
    },
    "09-rel_shift": {
        "identity": lambda x: x,
        "off by one (+1)": lambda x: gather_shift(x, offset=1),
        "off by one (−1)": lambda x: gather_shift(x, offset=-1),
        "ascending distances": lambda x: gather_shift(x, ascending=True),
        "zero column padded on the right": pad_on_the_right,
    },
    "09-rel_attention_logits": {
        "u and v swapped": logits_with(gather_shift, swap=True),
        "not scaled by √d_head": logits_with(gather_shift, scale=False),
        "no rel_shift": logits_with(lambda x: x),
        "u missing": logits_with(gather_shift, use_u=False),
        "rel_shift off by one": logits_with(lambda x: gather_shift(x, offset=1)),
        "positions ascending": logits_with(lambda x: gather_shift(x, ascending=True)),
    },
    "09-relative_attention": {
        "u and v swapped": attention_with(swap_uv=True),
        "term (b) missing": attention_with(drop=("b",)),
        "term (d) missing": attention_with(drop=("d",)),
        "distances ascending (shift the wrong way)": attention_with(table=ascending_table),
        "mask ignores the memory offset": attention_with(mask="segment"),
        "no causal mask": attention_with(mask=None),
        "keys and values from the segment only": attention_with(keys="segment"),
    },
    "09-update_memory": {
        "no stop-gradient": lambda m, h, n: concat(m, h)[:, tf.maximum(m.shape[1] + h.shape[1] - n, 0):],
        "first mem_len steps": lambda m, h, n: tf.stop_gradient(concat(m, h)[:, :n]),
        "x[:, -mem_len:] keeps everything at mem_len 0": lambda m, h, n: tf.stop_gradient(concat(m, h)[:, -n:]),
        "hidden only": lambda m, h, n: tf.stop_gradient(h[:, -n:]) if n else h[:, :0],
        "[hidden; memory]": lambda m, h, n: tf.stop_gradient(concat(h, m)[:, tf.maximum(m.shape[1] + h.shape[1] - n, 0):]),
    },
}


@pytest.mark.parametrize("exercise,mutant,words", [
    ("09-relative_positional_encoding", "ascending distances", "ascending"),
    ("09-relative_positional_encoding", "interleaved sin/cos", "interleaved"),
    ("09-rel_shift", "off by one (+1)", "off by one"),
    ("09-rel_shift", "ascending distances", "klen − 1 − c"),
    ("09-rel_attention_logits", "u and v swapped", "swapped"),
    ("09-rel_attention_logits", "not scaled by √d_head", "√d_head"),
    ("09-rel_attention_logits", "no rel_shift", "not shifted"),
    ("09-relative_attention", "u and v swapped", "swapped"),
    ("09-relative_attention", "term (b) missing", "term (b)"),
    ("09-relative_attention", "term (d) missing", "term (d)"),
    ("09-relative_attention", "distances ascending (shift the wrong way)", "wrong way"),
    ("09-relative_attention", "mask ignores the memory offset", "ignores the memory"),
    ("09-update_memory", "no stop-gradient", "tf.stop_gradient"),
    ("09-update_memory", "first mem_len steps", "LAST"),
    ("09-update_memory", "x[:, -mem_len:] keeps everything at mem_len 0", "x[:, -0:]"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    assert words in checks.run(exercise, MUTANTS[exercise][mutant]).message


def test_stop_gradient_is_checked_where_the_answer_lives():
    """An answer that runs elsewhere (like the grader's proxy) is differentiated there."""
    result = checks.run("09-update_memory", Elsewhere(MUTANTS["09-update_memory"]["no stop-gradient"]))
    assert result.status == "failed" and "tf.stop_gradient" in result.message
    assert checks.run("09-update_memory", Elsewhere(solution_answers("09")["update_memory"])).status == "passed"

"""Checks for lesson 07, attention.

The masked softmax is compared with ``keras.layers.Softmax`` called with a mask; dot-product
(Luong) attention with ``keras.layers.Attention``; the general (bilinear, Luong) attention
layer with a brute-force loop over every (query, key) pair of ``s_tᵀ W h_j``, using the W the
check sets (tests/test_checks_07.py shows that loop agrees with ``keras.layers.Attention`` on
the W-projected queries); the additive (Bahdanau) attention layer with
``keras.layers.AdditiveAttention`` applied to the learner's projections of the query and the
keys, using the weights the check sets. All on random shapes (batch 1, a single query or key
included) with padding masks that hide the end of some rows.

Conventions, so that the grader can call answers in another process: every argument and
result is a tensor, a NumPy array, a list, a tuple or a number. The layer class is only
instantiated, called, and read or written through ``get_weights``/``set_weights``; the
check never looks at its attributes or its type.
"""
import warnings

import keras
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, built_once, call, expect_close, register, softmax, to_numpy

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _shapes(rng: np.random.Generator) -> list[tuple[int, int, int, int, int]]:
    """(batch, queries, keys, query_dim, value_dim): edge cases first, then random ones."""
    return [(1, 1, 1, 3, 3), (1, 4, 1, 2, 5), (2, 1, 6, 4, 4),
            (int(rng.integers(2, 5)), int(rng.integers(2, 7)), int(rng.integers(3, 9)), 4, 4),
            (int(rng.integers(2, 5)), int(rng.integers(2, 7)), int(rng.integers(3, 9)), 3, 6)]


def _mask(rng: np.random.Generator, batch: int, keys: int) -> np.ndarray:
    """[batch, keys] booleans: each row keeps a random first part (at least one key), as
    padding at the end of shorter inputs does; the first row is never padded."""
    lengths = rng.integers(1, keys + 1, size=batch)
    lengths[0] = keys
    return np.arange(keys)[None, :] < lengths[:, None]


def _quietly(function, *args, **kwargs):
    """Run a Keras reference without its warning about a softmax over a single key
    (the checks use one key on purpose: its weight must be exactly 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return function(*args, **kwargs)


def _normal(rng, *shape, scale=1.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _softmax_mistakes(scores: np.ndarray, mask: np.ndarray) -> dict:
    """What common wrong masked softmaxes give, to name the likely cause."""
    m = mask[:, None, :]
    plain = softmax(scores, -1)
    return {
        "the mask is ignored: padded positions must get weight 0 (add a large negative number "
        "to their scores before the softmax).": plain,
        "the softmax runs over the wrong axis: normalize over the keys, the last axis.":
            softmax(np.where(m, scores, -1e9), 1),
        "padded weights are zeroed after the softmax, so the rest no longer sums to 1: mask "
        "the scores before the softmax.": plain * m,
        "the mask is the wrong way round: True means keep, False means padding.":
            softmax(np.where(m, -1e9, scores), -1),
    }


def _pair(result, what: str, names: str) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} should return a pair ({names}); it returned a {type(result).__name__}.")
    return result


@register("07-masked_softmax")
def check_masked_softmax(masked_softmax, rng: np.random.Generator) -> str:
    for batch, queries, keys, _, _ in _shapes(rng):
        scores = _normal(rng, batch, queries, keys, scale=3.0)
        mask = _mask(rng, batch, keys)
        what = f"masked_softmax(scores {scores.shape}, mask {mask.shape})"
        got = to_numpy(call(masked_softmax, tf.constant(scores), tf.constant(mask), what=what), what)
        expected = _quietly(keras.layers.Softmax(), tf.constant(scores), mask=tf.constant(mask[:, None, :])).numpy()
        expect_close(got, expected, what, **TOLERANCE, reference="keras.layers.Softmax with the mask",
                     likely_causes=_softmax_mistakes(scores, mask))
    return "matches keras.layers.Softmax(mask=…) for 1 to 8 keys, padded rows included."


def _keras_dot(query, value, mask):
    return _quietly(keras.layers.Attention(), [tf.constant(query), tf.constant(value)],
                    mask=[None, tf.constant(mask)], return_attention_scores=True)


def _check_attention_outputs(context, weights, reference_context, reference_weights, scores, mask, what,
                             reference, extra_causes, context_causes=None):
    """Compare weights first (their mistakes have names), then the context vectors."""
    weights = to_numpy(weights, what + " weights")
    causes = {**_softmax_mistakes(scores, mask), **extra_causes}
    expect_close(weights, reference_weights, what + ": the attention weights", **TOLERANCE, reference=reference,
                 likely_causes=causes)
    context = to_numpy(context, what + " context")
    expect_close(context, reference_context, what + ": the context vectors (weights @ value)", **TOLERANCE,
                 reference=reference, likely_causes=context_causes)


@register("07-luong_attention")
def check_luong_attention(luong_attention, rng: np.random.Generator) -> str:
    for batch, queries, keys, _, dim in _shapes(rng):
        query, value = _normal(rng, batch, queries, dim), _normal(rng, batch, keys, dim)
        mask = _mask(rng, batch, keys)
        what = f"luong_attention(query {query.shape}, value {value.shape}, value_mask {mask.shape})"
        result = call(luong_attention, tf.constant(query), tf.constant(value), tf.constant(mask), what=what)
        context, weights = _pair(result, what, "context, weights")
        reference_context, reference_weights = (t.numpy() for t in _keras_dot(query, value, mask))
        scores = np.einsum("bqd,bkd->bqk", query, value)
        scaled = softmax(np.where(mask[:, None, :], scores / np.sqrt(dim), -1e9), -1)
        _check_attention_outputs(
            context, weights, reference_context, reference_weights, scores, mask, what,
            "keras.layers.Attention", extra_causes={
                "the scores are divided by √d: Luong's dot score (and keras.layers.Attention's default) "
                "is the plain dot product q·k.": scaled})
    return "matches keras.layers.Attention (weights and context) with padding masks, 1 to 8 keys."


def general_reference(query: np.ndarray, value: np.ndarray, w: np.ndarray, mask: np.ndarray):
    """Luong's general attention by brute force: ``(context, weights, scores)``.

    Every score is one bilinear form ``e_tj = s_tᵀ W h_j``, computed pair by pair; each
    query's weights are a softmax over its real keys only (padding gets exactly 0), and its
    context the weighted sum of the values."""
    batch, queries, keys = query.shape[0], query.shape[1], value.shape[1]
    scores = np.zeros((batch, queries, keys))
    weights = np.zeros((batch, queries, keys))
    context = np.zeros((batch, queries, value.shape[2]))
    for b in range(batch):
        for t in range(queries):
            for j in range(keys):
                scores[b, t, j] = query[b, t].astype(np.float64) @ w @ value[b, j]
            real = mask[b]
            e = np.exp(scores[b, t, real] - scores[b, t, real].max())
            weights[b, t, real] = e / e.sum()
            context[b, t] = weights[b, t] @ value[b]
    return context, weights, scores


@register("07-GeneralAttention")
def check_general_attention(GeneralAttention, rng: np.random.Generator) -> str:
    square_first = sorted(_shapes(rng), key=lambda shape: shape[3] != shape[4])  # so mistakes get their names
    for batch, queries, keys, query_dim, value_dim in square_first:
        query, value = _normal(rng, batch, queries, query_dim), _normal(rng, batch, keys, value_dim)
        mask = _mask(rng, batch, keys)
        what = f"GeneralAttention()(query {query.shape}, value {value.shape}, mask={mask.shape})"
        layer = call(GeneralAttention, what="GeneralAttention()")
        call(layer, tf.constant(query), tf.constant(value), tf.constant(mask), what=what)  # builds it
        weights_now = call(layer.get_weights, what=f"{what}.get_weights()")
        shapes = [tuple(np.shape(w)) for w in weights_now] if isinstance(weights_now, (list, tuple)) else None
        if shapes != [(query_dim, value_dim)]:
            hint = ""
            if shapes == [(value_dim, query_dim)]:
                hint = (" Yours is W transposed: in s_tᵀ W h_j the query multiplies W from the left, so W has "
                        "a row per query feature and a column per value feature.")
            raise CheckFailed(
                f"after one call, the layer's get_weights() gives shapes {shapes}; expected one weight, W of shape "
                f"[query_dim, value_dim] = {(query_dim, value_dim)}, created in build.{hint}")
        w = _normal(rng, query_dim, value_dim, scale=1 / np.sqrt(query_dim))
        call(layer.set_weights, [w], what=f"{what}.set_weights([W])")
        result = call(layer, tf.constant(query), tf.constant(value), tf.constant(mask), what=what)
        context, weights = _pair(result, what, "context, weights")
        reference_context, reference_weights, scores = general_reference(query, value, w, mask)

        def masked(e):
            return softmax(np.where(mask[:, None, :], e, -1e9), -1)

        causes = {
            "the scores are divided by √d: Luong's general score s_tᵀ W h_j is not scaled.": masked(scores / np.sqrt(
                value_dim)),
            "the scores are divided by √d (of the query): Luong's general score s_tᵀ W h_j is not scaled.":
                masked(scores / np.sqrt(query_dim)),
        }
        if query_dim == value_dim:
            causes["W is applied the wrong way round: you computed s_tᵀ Wᵀ h_j; the score is s_tᵀ W h_j, the "
                   "query times W first, then a dot product with each value."] = masked(
                np.einsum("bqd,ed,bke->bqk", query, w, value))
            causes["W is not used: that is the plain dot score s_t · h_j; the general score puts W between the "
                   "query and the values."] = masked(np.einsum("bqd,bkd->bqk", query, value))
        context_causes = {
            "the context mixes the values multiplied by W; it must mix the values h_j themselves: "
            "context = weights @ value.": reference_weights @ (value @ w.T) if query_dim == value_dim else None,
        }
        _check_attention_outputs(
            context, weights, reference_context, reference_weights, scores, mask, what,
            "a loop over every pair (t, j) of s_tᵀ W h_j", extra_causes=causes,
            context_causes={k: v for k, v in context_causes.items() if v is not None})
    return ("matches a brute-force loop of s_tᵀ W h_j over every query and key, with padding masks, for query and "
            "value sizes that differ.")


def _additive_attention(units: int):
    """keras.layers.AdditiveAttention (scaled by a learned v) for projections of size ``units``."""
    layer = keras.layers.AdditiveAttention(use_scale=True)
    layer.build([(None, None, units), (None, None, units), (None, None, units)])
    return layer


@register("07-BahdanauAttention")
def check_bahdanau_attention(BahdanauAttention, rng: np.random.Generator) -> str:
    for batch, queries, keys, query_dim, value_dim in _shapes(rng):
        units = int(rng.integers(2, 6))
        query, value = _normal(rng, batch, queries, query_dim), _normal(rng, batch, keys, value_dim)
        mask = _mask(rng, batch, keys)
        what = f"BahdanauAttention({units})(query {query.shape}, value {value.shape}, mask={mask.shape})"
        layer = call(BahdanauAttention, units, what=f"BahdanauAttention({units})")
        call(layer, tf.constant(query), tf.constant(value), tf.constant(mask), what=what)  # builds it
        weights_now = call(layer.get_weights, what=f"{what}.get_weights()")
        shapes = [tuple(np.shape(w)) for w in weights_now] if isinstance(weights_now, (list, tuple)) else None
        wanted = [(query_dim, units), (value_dim, units), (units,)]
        if shapes is None or len(shapes) != 3 or shapes[:2] != wanted[:2] or int(np.prod(shapes[2])) != units:
            raise CheckFailed(
                f"after one call, the layer's get_weights() gives shapes {shapes}; expected three weights, "
                f"created in build in this order: W_query {wanted[0]}, W_key {wanted[1]}, v {wanted[2]}."
            )
        w_query, w_key = _normal(rng, query_dim, units), _normal(rng, value_dim, units)
        v = _normal(rng, units)
        call(layer.set_weights, [w_query, w_key, v.reshape(shapes[2])], what=f"{what}.set_weights(...)")
        result = call(layer, tf.constant(query), tf.constant(value), tf.constant(mask), what=what)
        context, weights = _pair(result, what, "context, weights")

        projected_query, projected_key = query @ w_query, value @ w_key
        reference = built_once(lambda: _additive_attention(units), "AdditiveAttention", units)
        reference.set_weights([v])
        reference_context, reference_weights = (t.numpy() for t in _quietly(
            reference, [tf.constant(projected_query), tf.constant(value), tf.constant(projected_key)],
            mask=[None, tf.constant(mask)], return_attention_scores=True))
        summed = projected_query[:, :, None, :] + projected_key[:, None, :, :]
        scores = np.sum(v * np.tanh(summed), axis=-1)
        _check_attention_outputs(
            context, weights, reference_context, reference_weights, scores, mask, what,
            "keras.layers.AdditiveAttention on your projections", extra_causes={
                "no tanh: the score is v · tanh(q W_query + k W_key).": softmax(np.where(
                    mask[:, None, :], np.sum(v * summed, axis=-1), -1e9), -1)})
    return ("matches keras.layers.AdditiveAttention on the projected query and keys, with padding masks, "
            "for query and value sizes that differ.")

"""Checks for lesson 08, self-attention and the Transformer.

Scaled dot-product attention and the causal mask are compared with brute-force NumPy
definitions on random shapes (batch 1, time 1, extra head axes, broadcast masks); the
positional encoding with the formula of Vaswani et al. (2017); and the hand-written
multi-head attention layer with ``keras.layers.MultiHeadAttention`` carrying the same
(random, non-zero) weights, copied with ``set_weights``; the Transformer block with a post-norm
block of Keras layers carrying the same weights, called causally (the language model) and with
a padding mask (the encoder).
"""
import keras
import numpy as np

from utils.checks import CheckFailed, built_once, call, expect_close, register, softmax, to_numpy

RTOL, ATOL = 1e-4, 1e-5  # float32 through softmax and several matrix products


def _attention(q, k, v, mask=None, scale=None, axis=-1, invert=False):
    """Brute-force attention in float64: softmax(q kᵀ · scale) v, masked where mask is False
    (or, with ``invert``, where it is True: the mistake of the opposite convention)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        allowed = np.asarray(mask, bool)
        scores = np.where(~allowed if invert else allowed, scores, -1e9)
    weights = softmax(scores, axis)
    return weights @ v, weights


def _random_mask(rng, shape) -> np.ndarray:
    """A boolean mask (True = may attend) in which every query may attend to at least one key."""
    mask = rng.random(shape) < 0.6
    mask[..., 0] = True
    return mask


# (leading axes of q, Tq, Tk, d, dv, mask shape or None); "B" and "H" stand for the drawn sizes.
def _attention_cases(rng):
    b, h = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    tq, tk = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    d, dv = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    return [
        ("no mask", (b,), tq, tk, d, dv, None),
        ("batch 1, one query", (1,), 1, tk, d, dv, None),
        ("one key", (b,), tq, 1, d, dv, None),
        ("no batch axis", (), tq, tk, d, dv, None),
        ("heads axis [B, H, T, d]", (b, h), tq, tk, d, dv, None),
        ("full mask [B, Tq, Tk]", (b,), tq, tk, d, dv, (b, tq, tk)),
        ("padding mask [B, 1, Tk]", (b,), tq, tk, d, dv, (b, 1, tk)),
        ("causal mask [T, T]", (b,), tq, tq, d, dv, "causal"),
        ("mask [B, 1, 1, Tk] over heads", (b, h), tq, tk, d, dv, (b, 1, 1, tk)),
        ("large scores", (b,), tq, tk, 64, dv, None),
    ]


@register("08-scaled_dot_product_attention")
def check_scaled_dot_product_attention(attention, rng: np.random.Generator) -> str:
    for name, lead, tq, tk, d, dv, mask_shape in _attention_cases(rng):
        scale = 3.0 if d == 64 else 1.0  # "large scores": softmax must not overflow
        q = (scale * rng.normal(size=lead + (tq, d))).astype(np.float32)
        k = (scale * rng.normal(size=lead + (tk, d))).astype(np.float32)
        v = rng.normal(size=lead + (tk, dv)).astype(np.float32)
        if mask_shape is None:
            mask = None
        elif mask_shape == "causal":
            mask = np.tril(np.ones((tq, tq), bool))
        else:
            mask = _random_mask(rng, mask_shape)
        what = f"scaled_dot_product_attention(q, k, v, mask) ({name}: q {q.shape}, k {k.shape}, v {v.shape}" + \
               (f", mask {mask.shape})" if mask is not None else ", mask=None)")
        result = call(attention, q, k, v, mask, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"{what} returned a {type(result).__name__}; expected a pair (output, weights).")
        output, weights = (to_numpy(r, f"{what}[{i}]") for i, r in enumerate(result))
        expected_output, expected_weights = _attention(q, k, v, mask)
        causes = {
            "the scores are divided by d; divide by √d (the square root of the key size).":
                _attention(q, k, v, mask, scale=1.0 / d)[1],
            "the scores are not scaled; divide q kᵀ by √d.": _attention(q, k, v, mask, scale=1.0)[1],
            "the softmax runs over the queries (axis −2); each query's weights over the keys (the "
            "last axis) must sum to 1.": _attention(q, k, v, mask, axis=-2)[1],
        }
        if mask is not None:
            causes["the mask is inverted: in Keras's convention True (1) means \"may attend\", so "
                   "scores where the mask is False must be pushed to −∞."] = \
                _attention(q, k, v, mask, invert=True)[1]
        if tq == tk:
            causes["the weights are transposed: weights[..., i, j] is how much query i looks at key j."] = \
                np.swapaxes(expected_weights, -1, -2)
        expect_close(weights, expected_weights.astype(np.float32), f"the attention weights of {what}",
                     rtol=RTOL, atol=ATOL, reference="softmax(q kᵀ / √d) with masked scores at −∞",
                     likely_causes=causes)
        expect_close(output, expected_output.astype(np.float32), f"the output of {what}", rtol=RTOL,
                     atol=ATOL, reference="weights @ v")
    return "weights and outputs match softmax(q kᵀ/√d) v for ranks 2 to 4, with broadcast masks, batch 1 and time 1."


@register("08-causal_mask")
def check_causal_mask(causal_mask, rng: np.random.Generator) -> str:
    for length in [5, 1, 2, int(rng.integers(6, 40))]:
        what = f"causal_mask({length})"
        got = to_numpy(call(causal_mask, length, what=what), what)
        expected = np.tril(np.ones((length, length), bool))
        if got.shape != expected.shape:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape} (queries × keys).")
        if got.dtype != bool:
            raise CheckFailed(f"{what} has dtype {got.dtype}; return a boolean mask (True = may attend), "
                              "e.g. with tf.cast(..., tf.bool) or a comparison.")
        if np.array_equal(got, expected):
            continue
        if np.array_equal(got, np.tril(expected, -1)):
            cause = "the diagonal is False: a token may attend to itself."
        elif np.array_equal(got, expected.T):
            cause = "it is transposed: row i (query i) may attend to columns j ≤ i (keys at or before i)."
        elif np.array_equal(got, ~expected):
            cause = "it is inverted: True must mark the keys a query may attend to (itself and the past)."
        else:
            cause = "row i must be True in columns 0…i and False after."
        raise CheckFailed(f"{what} is wrong: {cause}")
    return "lower-triangular boolean masks (diagonal included) for lengths 1 to 39."


def _sinusoids(length: int, depth: int, pairs: str = "interleaved", exponent: float = 2.0,
               swap: bool = False) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / 10000^(2i/depth)), PE[pos, 2i+1] = cos(same), in float64;
    the other arguments produce the usual mistakes."""
    pos = np.arange(length)[:, None]
    i = np.arange(depth // 2)[None, :]
    angle = pos / 10000.0 ** (exponent * i / depth)
    first, second = (np.cos(angle), np.sin(angle)) if swap else (np.sin(angle), np.cos(angle))
    if pairs == "halves":
        return np.concatenate([first, second], axis=1)
    out = np.empty((length, depth))
    out[:, 0::2], out[:, 1::2] = first, second
    return out


@register("08-positional_encoding")
def check_positional_encoding(positional_encoding, rng: np.random.Generator) -> str:
    for length, depth in [(1, 2), (7, 4), (50, 16), (int(rng.integers(20, 200)), 2 * int(rng.integers(8, 64)))]:
        what = f"positional_encoding({length}, {depth})"
        got = to_numpy(call(positional_encoding, length, depth, what=what), what)
        if got.shape == (depth, length) and length != depth:
            raise CheckFailed(f"{what} has shape {got.shape}, expected ({length}, {depth}): "
                              "one row per position.")
        if got.dtype != np.float32:
            raise CheckFailed(f"{what} has dtype {got.dtype}; return float32, the dtype of the "
                              "embeddings it is added to.")
        expect_close(got, _sinusoids(length, depth).astype(np.float32), what, rtol=1e-4, atol=1e-4,
                     reference="sin/cos of pos / 10000^(2i/depth) in columns 2i and 2i+1",
                     likely_causes={
                         "the sines fill the first half and the cosines the second; this lesson "
                         "interleaves them: column 2i is a sine, column 2i+1 the cosine of the same "
                         "angle.": _sinusoids(length, depth, pairs="halves"),
                         "the exponent uses i/depth for pair i; it is 2i/depth (the column index of "
                         "the sine).": _sinusoids(length, depth, exponent=1.0),
                         "sine and cosine are swapped: even columns are sines.": _sinusoids(length, depth, swap=True),
                     })
    return "sin/cos pairs with wavelengths 2π·10000^(2i/depth), float32, for lengths 1 to 199 and depths 2 to 126."


def _reference_layer(rng, num_heads, key_dim, query_dim, value_dim, key_input_dim=None):
    """keras.layers.MultiHeadAttention built for these sizes, with random non-zero weights
    (its biases start at zero, which would hide a missing bias)."""
    def make():
        layer = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim)
        query = np.zeros((1, 1, query_dim), np.float32)
        value = np.zeros((1, 1, value_dim), np.float32)
        key = None if key_input_dim is None else np.zeros((1, 1, key_input_dim), np.float32)
        layer(query, value, key=key)
        return layer

    layer = built_once(make, "MultiHeadAttention", num_heads, key_dim, query_dim, value_dim, key_input_dim)
    weights = [(rng.normal(size=w.shape) / np.sqrt(w.shape[0] if w.ndim == 3 else 4)).astype(np.float32)
               for w in layer.get_weights()]
    layer.set_weights(weights)
    return layer, weights


def _mha_cases(rng):
    b, tq, tk = int(rng.integers(2, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7))
    d = int(rng.integers(6, 12))
    return [
        # name, heads, key_dim, query [B, Tq, dq], value [B, Tk, dv], key dim or None, mask kind
        ("self-attention", 2, 4, (b, tq, d), None, None, None),
        ("self-attention with a causal mask", 3, 2, (b, tq, d), None, None, "causal"),
        ("batch 1, time 1, causal", 2, 3, (1, 1, d), None, None, "causal"),
        ("one head", 1, 5, (b, tq, d), None, None, None),
        ("cross-attention, value of another size", 2, 3, (b, tq, d), (b, tk, d + 3), None, None),
        ("cross-attention with a separate key", 4, 2, (b, tq, d), (b, tk, d + 1), d + 2, None),
        ("cross-attention with an attention_mask", 2, 4, (b, tq, d), (b, tk, d), None, "mask"),
        ("self-attention, attention_mask and causal mask", 2, 3, (b, tq, d), None, None, "both"),
    ]


HEADS_HINT = ("Build the 8 weights in keras.layers.MultiHeadAttention's order and shapes: query kernel "
              "[d_query, heads, key_dim], query bias [heads, key_dim], key kernel [d_key, heads, key_dim], "
              "key bias, value kernel [d_value, heads, key_dim], value bias, output kernel "
              "[heads, key_dim, d_query], output bias [d_query].")


@register("08-multi_head_attention")
def check_multi_head_attention(layer_class, rng: np.random.Generator) -> str:
    for name, heads, key_dim, q_shape, v_shape, key_input_dim, mask_kind in _mha_cases(rng):
        query = rng.normal(size=q_shape).astype(np.float32)
        value = query if v_shape is None else rng.normal(size=v_shape).astype(np.float32)
        key = None if key_input_dim is None else rng.normal(size=value.shape[:2] + (key_input_dim,)).astype(np.float32)
        reference, weights = _reference_layer(rng, heads, key_dim, query.shape[-1], value.shape[-1], key_input_dim)
        kwargs = {}
        if mask_kind in ("mask", "both"):
            kwargs["attention_mask"] = _random_mask(rng, (query.shape[0], query.shape[1], value.shape[1]))
        if mask_kind in ("causal", "both"):
            kwargs["use_causal_mask"] = True
        if key is not None:
            kwargs["key"] = key
        expected = reference(query, value, **kwargs).numpy()

        made = f"HandMultiHeadAttention(num_heads={heads}, key_dim={key_dim})"
        layer = call(lambda: layer_class(num_heads=heads, key_dim=key_dim), what=made)
        args = ", ".join(f"{k}=…" for k in kwargs)
        what = f"{made}(query {query.shape}, value {value.shape}{', ' + args if args else ''}) ({name})"
        call(lambda: layer(query, value, **kwargs), what=f"the first call of {what}")  # builds the weights
        own = [to_numpy(w, f"{made}.get_weights()") for w in call(lambda: layer.get_weights(),
                                                                     what=f"{made}.get_weights()")]
        shapes = [tuple(w.shape) for w in own]
        wanted = [tuple(w.shape) for w in weights]
        if shapes != wanted:
            raise CheckFailed(f"after its first call, {made} has weights of shapes {shapes}; Keras's layer "
                              f"for the same inputs has {wanted}. {HEADS_HINT}")
        call(lambda: layer.set_weights(weights), what=f"{made}.set_weights(keras_layer.get_weights())")
        got = to_numpy(call(lambda: layer(query, value, **kwargs), what=what), what)
        if got.shape != expected.shape and got.shape == query.shape[:2] + (heads * key_dim,):
            raise CheckFailed(f"the output of {what} has shape {got.shape}, expected {expected.shape}: the "
                              "output projection is missing: the heads go through the output kernel "
                              "[heads, key_dim, d_query] and bias, back to the query's size.")
        expect_close(got, expected, f"the output of {what}", rtol=RTOL, atol=ATOL,
                     reference="keras.layers.MultiHeadAttention with the same weights",
                     likely_causes=_mha_mistakes(query, value, key, weights, heads, key_dim, kwargs))
    return ("matches keras.layers.MultiHeadAttention with copied weights: self- and cross-attention, "
            "1 to 4 heads, causal and explicit masks, batch 1 and time 1.")


def _mha(query, value, key, weights, mask, *, scale_power=0.5, axis=-1, invert=False, output=True,
         split="heads-first"):
    """Multi-head attention in float64 by einsum, with switches for the usual mistakes."""
    wq, bq, wk, bk, wv, bv, wo, bo = (np.asarray(w, np.float64) for w in weights)
    key = value if key is None else key
    q = np.einsum("btd,dhk->bthk", query, wq) + bq
    k = np.einsum("bsd,dhk->bshk", key, wk) + bk
    v = np.einsum("bsd,dhk->bshk", value, wv) + bv
    if split == "scrambled":  # heads taken from the flat [heads·key_dim] axis in the wrong order
        heads, key_dim = q.shape[2], q.shape[3]
        q, k, v = (a.reshape(a.shape[:2] + (key_dim, heads)).swapaxes(2, 3) for a in (q, k, v))
    scores = np.einsum("bthk,bshk->bhts", q, k) / q.shape[-1] ** scale_power
    if mask is not None:
        allowed = np.broadcast_to(mask[:, None], scores.shape)
        scores = np.where(~allowed if invert else allowed, scores, -1e9)
    attended = np.einsum("bhts,bshk->bthk", softmax(scores, axis), v)
    if split == "scrambled":  # merged back by the inverse of the same wrong split
        attended = attended.swapaxes(2, 3).reshape(attended.shape)
    if not output:
        return attended.reshape(attended.shape[:2] + (-1,))
    return np.einsum("bthk,hkd->btd", attended, wo) + bo


def _mha_mistakes(query, value, key, weights, heads, key_dim, kwargs) -> dict:
    mask = kwargs.get("attention_mask")
    if kwargs.get("use_causal_mask"):
        causal = np.tril(np.ones((query.shape[1], value.shape[1]), bool))[None]
        mask = causal if mask is None else (mask & causal)
    causes = {
        "the scores are divided by key_dim; divide them by √key_dim.":
            _mha(query, value, key, weights, mask, scale_power=1.0),
        "the scores are not scaled; divide them by √key_dim.": _mha(query, value, key, weights, mask, scale_power=0.0),
        "the softmax runs over the queries; it must run over the keys (the last axis of the scores).":
            _mha(query, value, key, weights, mask, axis=-2),
        "the heads are split wrongly: the projected [.., heads, key_dim] axes (from einsum with the "
        "[d, heads, key_dim] kernel) must stay in that order.": _mha(query, value, key, weights, mask, split="scrambled"),
        "the output projection is missing: concatenated heads go through the output kernel "
        "[heads, key_dim, d_query] and bias.": _mha(query, value, key, weights, mask, output=False),
    }
    everything = np.ones((1, query.shape[1], value.shape[1]), bool)
    causes["the mask is inverted: True (1) means \"may attend\" (with no mask given, every key may be "
           "attended to)."] = _mha(query, value, key, weights, everything if mask is None else mask, invert=True)
    if mask is not None:
        causes["the mask is ignored."] = _mha(query, value, key, weights, None)
    if kwargs.get("use_causal_mask") and kwargs.get("attention_mask") is not None:
        causes["with both an attention_mask and use_causal_mask=True, combine them: a key must be "
               "allowed by both."] = _mha(query, value, key, weights, kwargs["attention_mask"])
    return {cause: out.astype(np.float32) for cause, out in causes.items()}


def _block_layers(weights):
    """The Keras layers of a post-norm Transformer block (ReLU feed-forward) carrying ``weights``,
    in the order of TransformerBlock.get_weights(): attention, first norm, feed-forward hidden
    and output layers, second norm."""
    d_model, heads, key_dim = weights[0].shape
    ff_units = weights[10].shape[-1]

    def make():
        layers = (keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim), keras.layers.LayerNormalization(),
                  keras.layers.Dense(ff_units, activation="relu"), keras.layers.Dense(d_model),
                  keras.layers.LayerNormalization())
        x = np.zeros((1, 1, d_model), np.float32)
        layers[0](x, x)
        for layer, inputs in zip(layers[1:], (d_model, d_model, ff_units, d_model)):
            layer.build((None, None, inputs))
        return layers

    layers = built_once(make, "TransformerBlock", d_model, heads, key_dim, ff_units)
    start = 0
    for layer in layers:
        count = len(layer.weights)
        layer.set_weights(weights[start:start + count])
        start += count
    return layers


def _block_reference(x, layers, *, residual=True, norm="post", causal=True, mask=None):
    """The block of ``layers`` (from _block_layers) applied to ``x``, with switches for the usual mistakes."""
    attention, norm_1, hidden, output, norm_2 = layers

    def sublayer(h, f, layer_norm):
        if norm == "pre":
            return h + f(layer_norm(h))
        return layer_norm(h + f(h)) if residual else layer_norm(f(h))

    h = sublayer(x, lambda a: attention(a, a, attention_mask=mask, use_causal_mask=causal), norm_1)
    h = sublayer(h, lambda a: output(hidden(a)), norm_2)
    return np.asarray(h, np.float64)


def _padding_mask(rng, batch: int, time: int) -> np.ndarray:
    """A [batch, time, time] padding mask: each sequence's first 1…time tokens are real, the
    rest padding (True = the key is real), the same row for every query."""
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = max(1, time - 1) if time > 1 else 1  # at least one sequence with padding when time > 1
    real = np.arange(time)[None, :] < lengths[:, None]
    return np.broadcast_to(real[:, None, :], (batch, time, time)).copy()


# The ways a case calls the block: (name, keyword arguments or None for block(x) alone).
def _block_calls(mask):
    return [
        ("block(x): causal by default", None),
        ("block(x, attention_mask=padding, use_causal_mask=False): an encoder block",
         {"attention_mask": mask, "use_causal_mask": False}),
        ("block(x, attention_mask=padding): padding and causal masks together", {"attention_mask": mask}),
    ]


@register("08-transformer_block")
def check_transformer_block(block_class, rng: np.random.Generator) -> str:
    cases = [(2, 5, 8, 2, 16), (1, 1, 4, 1, 8), (3, 7, 12, 3, 24), (int(rng.integers(1, 4)), int(rng.integers(2, 9)), 8, 4, 8)]
    for batch, time, d_model, heads, ff_units in cases:
        made = f"TransformerBlock({d_model}, {heads}, {ff_units})"
        x = rng.normal(size=(batch, time, d_model)).astype(np.float32)
        block = call(lambda: block_class(d_model, heads, ff_units), what=made)
        call(lambda: block(x), what=f"the first call of {made}(x) for x of shape {[batch, time, d_model]}")
        shapes = [tuple(w.shape) for w in call(lambda: block.get_weights(), what=f"{made}.get_weights()")]
        weights = [(rng.normal(size=s) / np.sqrt(s[0] if len(s) > 1 else 4)).astype(np.float32) for s in shapes]
        if len(weights) != 16:
            raise CheckFailed(f"after its first call, {made} has {len(weights)} weights, expected 16 (attention 8, "
                              "two LayerNormalizations 2 each, two Dense layers 2 each): call every given sub-layer "
                              "once, and do not create new layers in call.")
        for gamma in (8, 14):
            weights[gamma] = (1.0 + 0.3 * rng.normal(size=shapes[gamma])).astype(np.float32)
        call(lambda: block.set_weights(weights), what=f"{made}.set_weights(...)")
        mask = _padding_mask(rng, batch, time)
        layers = _block_layers(weights)
        for name, kwargs in _block_calls(mask):
            what = f"{made}, {name}, x of shape {[batch, time, d_model]}"
            got = to_numpy(call(lambda: block(x) if kwargs is None else block(x, **kwargs), what=what), what)
            causal = True if kwargs is None else kwargs.get("use_causal_mask", True)
            given_mask = None if kwargs is None else kwargs["attention_mask"]

            def variant(**mistake):
                """The block's output with one mistake, computed only if the answer is wrong."""
                switches = {"causal": causal, "mask": given_mask, **mistake}
                return lambda: _block_reference(x, layers, **switches)

            expected = variant()()
            if got.shape != expected.shape:
                raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape} ([batch, time, d_model]).")
            causes = {
                "a residual connection is missing: each sub-layer's result is added to its input, "
                "LayerNorm(x + sublayer(x)).": variant(residual=False),
                "the LayerNorm is applied before each sub-layer (pre-norm, x + sublayer(LayerNorm(x))); "
                "this block normalises after the addition, as in the original paper.": variant(norm="pre"),
            }
            if causal:
                causes["the attention is not causal: with use_causal_mask=True (the default) pass "
                       "use_causal_mask=True on to your attention, so no position reads the tokens after it."] = \
                    variant(causal=False)
            else:
                causes["the attention is causal although use_causal_mask=False: pass the argument on to your "
                       "attention instead of always using True."] = variant(causal=True)
            if given_mask is not None:
                causes["the attention_mask is not passed on: call your attention with "
                       "attention_mask=attention_mask, so no query attends to padding."] = variant(mask=None)
            expect_close(got.astype(np.float64), expected, what, rtol=1e-3, atol=1e-4,
                         reference="a post-norm block of Keras layers with the same weights", likely_causes=causes)
    return ("equals a post-norm block of keras.layers.MultiHeadAttention, LayerNormalization and Dense with "
            "the same weights, causal by default, with a padding mask with and without the causal mask, for 4 "
            "sizes incl. batch 1 and time 1.")

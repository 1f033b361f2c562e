"""Checks for lesson 09, Transformer-XL.

Everything is compared with brute-force definitions written out over explicit relative
distances: the sinusoid table row by row, rel_shift as a gather with the column of each
distance, the attention logits as the four terms (a)-(d) summed entry by entry, and the
memory as a plain concatenation and slice. Only entries a causal mask keeps (key j ≤ mlen + i)
are compared for rel_shift and the logits, as the exercises promise.
"""
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, call, expect_close, register, softmax, to_numpy, value_and_gradient

F32 = {"rtol": 1e-5, "atol": 1e-5}


def _sinusoid_table(klen: int, d_model: int, ascending: bool = False, exponent_step: int = 2,
                    interleave: bool = False, cosine_first: bool = False) -> np.ndarray:
    """Rows for distances klen−1, …, 0 (or 0, …, klen−1 when ``ascending``), in float64.

    The keyword arguments make the known wrong variants, for the likely-cause messages.
    """
    distances = np.arange(klen, dtype=np.float64)
    if not ascending:
        distances = distances[::-1]
    inverse = 1.0 / 10000.0 ** (exponent_step * np.arange(d_model // 2) / d_model)
    angles = distances[:, None] * inverse[None, :]
    sin, cos = np.sin(angles), np.cos(angles)
    if interleave:
        return np.stack([sin, cos], axis=-1).reshape(klen, d_model)
    return np.concatenate([cos, sin] if cosine_first else [sin, cos], axis=1)


@register("09-relative_positional_encoding")
def check_relative_positional_encoding(answer, rng: np.random.Generator) -> str:
    cases = [(1, 2), (2, 4), (5, 8), (int(rng.integers(10, 40)), 16), (int(rng.integers(40, 80)), 32)]
    for klen, d_model in cases:
        what = f"relative_positional_encoding({klen}, {d_model})"
        got = to_numpy(call(answer, klen, d_model, what=what), what)
        expected = _sinusoid_table(klen, d_model)
        expect_close(got.astype(np.float64), expected, what, reference="the sinusoid table", **F32,
                     likely_causes={
                         "the rows are in ascending order; row 0 must be the largest distance, klen − 1, "
                         "and the last row distance 0.": _sinusoid_table(klen, d_model, ascending=True),
                         "sines and cosines are interleaved; put all sines first, then all cosines.":
                             _sinusoid_table(klen, d_model, interleave=True),
                         "the cosine half comes first; the sine half goes first.":
                             _sinusoid_table(klen, d_model, cosine_first=True),
                         "the inverse frequencies use 10000^(k/d_model); they are 1 / 10000^(2k/d_model) "
                         "for k = 0, …, d_model/2 − 1.": _sinusoid_table(klen, d_model, exponent_step=1),
                     })
    return "rows for distances klen−1 … 0, sine half then cosine half, for 5 sizes up to klen = 79."


def _valid(qlen: int, klen: int) -> np.ndarray:
    """[qlen, klen]: True where key j is visible to query i, i.e. j ≤ mlen + i."""
    mlen = klen - qlen
    return np.arange(klen)[None, :] <= mlen + np.arange(qlen)[:, None]


def _by_distance(scores: np.ndarray, qlen: int, offset: int = 0, ascending: bool = False) -> np.ndarray:
    """Brute force: entry (i, j) is ``scores[..., i, column]`` with the column of distance mlen + i − j.

    ``scores[..., i, c]`` holds distance klen − 1 − c (or c when ``ascending``); ``offset``
    shifts the column, to recognise off-by-one answers.
    """
    klen = scores.shape[-1]
    mlen = klen - qlen
    i, j = np.arange(qlen)[:, None], np.arange(klen)[None, :]
    distance = mlen + i - j
    column = (distance if ascending else klen - 1 - distance) + offset
    column = np.clip(column, 0, klen - 1)
    index = np.broadcast_to(column, scores.shape)
    return np.take_along_axis(scores, index, axis=-1)


def _compare_visible(got, expected, qlen, what, reference, likely_causes, tolerance):
    """expect_close on the entries a causal mask keeps; the others may hold anything."""
    if got.shape != expected.shape:
        raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape} "
                          "([batch, heads, qlen, klen]).")
    visible = _valid(qlen, expected.shape[-1])
    keep = lambda values: np.where(visible, values, expected)  # noqa: E731
    expect_close(keep(got.astype(np.float64)), expected, what, reference=reference, **tolerance,
                 likely_causes={cause: keep(values) for cause, values in likely_causes.items()})


SHIFT_SHAPES = [(1, 1, 1, 1), (1, 1, 3, 3), (1, 2, 4, 7), (2, 1, 1, 5), (2, 3, 5, 12)]


@register("09-rel_shift")
def check_rel_shift(answer, rng: np.random.Generator) -> str:
    shapes = SHIFT_SHAPES + [(int(rng.integers(1, 4)), int(rng.integers(1, 4)), q, q + int(rng.integers(0, 9)))
                             for q in rng.integers(1, 9, size=3)]
    for shape in shapes:
        qlen = shape[2]
        x = rng.normal(size=shape).astype(np.float32)
        what = f"rel_shift(x) for x of shape {list(shape)}"
        got = to_numpy(call(answer, tf.constant(x), what=what), what)
        _compare_visible(got, _by_distance(x, qlen), qlen, what,
                         "the brute-force gather over distances mlen + i − j", {
                             "off by one: entry (i, j) is one column too far right; after padding one "
                             "zero column and reshaping, drop the first row, not the last.":
                                 _by_distance(x, qlen, offset=1),
                             "off by one: entry (i, j) is one column too far left.": _by_distance(x, qlen, offset=-1),
                             "you read the columns as ascending distances 0, 1, …; column c holds distance "
                             "klen − 1 − c.": _by_distance(x, qlen, ascending=True),
                             "nothing was shifted: x came back unchanged.": x,
                         }, F32)
    return "matches the brute-force gather over distances on the visible entries, for 8 shapes incl. qlen = klen and qlen = 1."


def _logit_terms(q, k, r, u, v):
    """The four terms of relative attention, brute force, [batch, heads, qlen, klen] each."""
    qlen = q.shape[1]
    a = np.einsum("bihd,bjhd->bhij", q, k)
    b = _by_distance(np.einsum("bihd,chd->bhic", q, r), qlen)
    c = np.einsum("hd,bjhd->bhj", u, k)[:, :, None, :] + 0 * a
    d = _by_distance(np.einsum("hd,chd->hc", v, r)[None, :, None, :] + 0 * a, qlen)
    return a, b, c, d


@register("09-rel_attention_logits")
def check_rel_attention_logits(answer, rng: np.random.Generator) -> str:
    cases = [(1, 1, 1, 1, 4), (1, 3, 3, 2, 4), (2, 4, 9, 2, 8), (3, 1, 6, 4, 2),
             (int(rng.integers(1, 4)), 5, 5 + int(rng.integers(1, 8)), 2, 16)]
    for batch, qlen, klen, heads, d_head in cases:
        q, k = (rng.normal(size=(batch, n, heads, d_head)) for n in (qlen, klen))
        r = rng.normal(size=(klen, heads, d_head))
        u, v = (rng.normal(size=(heads, d_head)) for _ in range(2))
        q, k, r, u, v = (a.astype(np.float32).astype(np.float64) for a in (q, k, r, u, v))
        what = f"rel_attention_logits(q, k, r, u, v) with qlen = {qlen}, klen = {klen}, {heads} heads of {d_head}"
        got = to_numpy(call(answer, *(tf.constant(a, tf.float32) for a in (q, k, r, u, v)), what=what), what)
        a, b, c, d = _logit_terms(q, k, r, u, v)
        scale = np.sqrt(d_head)
        a_s, b_s, c_s, d_s = _logit_terms(q, k, r, v, u)
        r_up = r[::-1]  # rows read as ascending distances
        a_a, b_a, c_a, d_a = _logit_terms(q, k, r_up, u, v)
        _compare_visible(got, (a + b + c + d) / scale, qlen, what, "the four terms (a)+(b)+(c)+(d) over √d_head", {
            "u and v are swapped: u goes with the content keys k, v with the positions r.": (a_s + b_s + c_s + d_s) / scale,
            "the logits are not divided by √d_head.": a + b + c + d,
            "the global content bias u is missing: term (c) is (u · k_j).": (a + b + d) / scale,
            "the global position bias v is missing: term (d) is (v · r_(i−j)).": (a + b + c) / scale,
            "the position terms (b) and (d) are missing: add (q_i + v) · r, shifted with rel_shift.": (a + c) / scale,
            "the position scores are not shifted: apply rel_shift to (q + v) · r.":
                (a + c + np.einsum("bihd,chd->bhic", q + v[None, None], r)) / scale,
            "the positions are read as ascending distances; row c of r is distance klen − 1 − c.":
                (a_a + b_a + c_a + d_a) / scale,
        }, {"rtol": 1e-4, "atol": 1e-4})
    return "equals ((q_i + u)·k_j + (q_i + v)·r_(mlen+i−j)) / √d_head on every visible entry, for 5 shapes incl. memory and qlen = 1."


def _no_gradient_path(update_memory, memory, hidden, mem_len) -> bool:
    """True when no gradient flows from the new memory back to ``memory`` or ``hidden``.

    The tape runs where the answer lives (see utils.checks.value_and_gradient), so this
    holds for an answer being graded in the grader's worker too.
    """
    for wrt in (0, 1):
        new, gradient = value_and_gradient(update_memory, memory, hidden, mem_len, wrt=wrt,
                                           what="update_memory(memory, hidden, mem_len)")
        if tf.is_tensor(new) and gradient is not None and np.any(np.asarray(gradient)):
            return False
    return True


@register("09-update_memory")
def check_update_memory(answer, rng: np.random.Generator) -> str:
    d_model = int(rng.integers(2, 6))
    cases = [(1, 0, 4, 4), (2, 4, 4, 4), (2, 6, 3, 5), (1, 2, 3, 8), (3, 5, 1, 2), (2, 3, 4, 0),
             (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))]
    for batch, mlen, qlen, mem_len in cases:
        memory = rng.normal(size=(batch, mlen, d_model)).astype(np.float32)
        hidden = rng.normal(size=(batch, qlen, d_model)).astype(np.float32)
        what = (f"update_memory(memory, hidden, {mem_len}) with memory of shape {list(memory.shape)} "
                f"and hidden of shape {list(hidden.shape)}")
        got = to_numpy(call(answer, tf.constant(memory), tf.constant(hidden), mem_len, what=what), what)
        both = np.concatenate([memory, hidden], axis=1)
        expected = both[:, both.shape[1] - min(mem_len, both.shape[1]):]
        if got.shape != expected.shape:
            hint = ""
            if mem_len == 0 and got.shape == both.shape:
                hint = (" With mem_len = 0 the memory is empty, but x[:, -0:] is all of x: slice from "
                        "length − mem_len instead.")
            elif got.shape[1:2] == (mem_len,) and mem_len > both.shape[1]:
                hint = " The concatenation is shorter than mem_len here: keep all of it."
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}.{hint}")
        expect_close(got, expected, what, reference="the last mem_len steps of [memory; hidden]", **F32,
                     likely_causes={
                         "you kept the first mem_len steps; the memory is the LAST mem_len steps (the most recent).":
                             both[:, :expected.shape[1]],
                         "the concatenation is in the wrong order: [memory; hidden], oldest first.":
                             np.concatenate([hidden, memory], axis=1)[:, both.shape[1] - expected.shape[1]:],
                     })
    checked = "values for 7 cases incl. an empty memory and mem_len = 0"
    memory = rng.normal(size=(2, 3, d_model)).astype(np.float32)
    hidden = rng.normal(size=(2, 4, d_model)).astype(np.float32)
    if not _no_gradient_path(answer, memory, hidden, 5):
        raise CheckFailed(
            "update_memory returns a tensor that gradients still flow through: wrap the result in "
            "tf.stop_gradient, so training a segment never backpropagates into earlier segments."
        )
    return checked + "; gradients are stopped."


def _attention_reference(h, memory, weights, swap_uv=False, terms="abcd", ascending=False, see_memory=True):
    """Relative multi-head attention over [memory; segment], brute force in float64.

    A double loop over queries i and keys j: the distance mlen + i − j, its sinusoid (sine
    half, cosine half) projected by W_r, the logit ((q_i + u)·k_j + (q_i + v)·r) / √d_head,
    a softmax over the keys query i may see (j ≤ mlen + i), then the values and the output
    projection. The keyword arguments make known wrong variants, for the likely causes.
    """
    u, v, w_q, w_k, w_v, w_r, w_o = (np.asarray(w, np.float64) for w in weights)
    if swap_uv:
        u, v = v, u
    batch, qlen, d_model = h.shape
    mlen = memory.shape[1]
    klen = mlen + qlen
    heads, d_head = u.shape
    context = np.concatenate([memory, h], axis=1).astype(np.float64)
    q = np.einsum("bid,dhk->bihk", h.astype(np.float64), w_q)
    k = np.einsum("bjd,dhk->bjhk", context, w_k)
    values = np.einsum("bjd,dhk->bjhk", context, w_v)
    inverse = 1.0 / 10000.0 ** (2 * np.arange(d_model // 2) / d_model)
    logits = np.full((batch, heads, qlen, klen), -np.inf)
    for i in range(qlen):
        for j in range(klen):
            if j > (mlen if see_memory else 0) + i:  # masked: a future key (or, wrongly, a memory key)
                continue
            distance = mlen + i - j
            if ascending:  # the table read the other way round: row of distance d holds klen − 1 − d
                distance = klen - 1 - distance
            encoding = np.concatenate([np.sin(distance * inverse), np.cos(distance * inverse)])
            r = np.einsum("d,dhk->hk", encoding, w_r)
            logit = 0.0
            if "a" in terms:
                logit = logit + np.einsum("bhk,bhk->bh", q[:, i], k[:, j])
            if "b" in terms:
                logit = logit + np.einsum("bhk,hk->bh", q[:, i], r)
            if "c" in terms:
                logit = logit + np.einsum("hk,bhk->bh", u, k[:, j])
            if "d" in terms:
                logit = logit + np.einsum("hk,hk->h", v, r)[None]
            logits[:, :, i, j] = logit / np.sqrt(d_head)
    weights_ = softmax(logits, axis=-1)
    mixed = np.einsum("bhij,bjhk->bihk", weights_, values)
    return np.einsum("bihk,hkd->bid", mixed, w_o)


@register("09-relative_attention")
def check_relative_attention(layer_class, rng: np.random.Generator) -> str:
    cases = [(2, 4, 6, 8, 2), (1, 1, 3, 8, 2), (1, 5, 0, 4, 1), (2, 3, 5, 12, 3),
             (int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 9)), 8, 2)]
    for batch, qlen, mlen, d_model, heads in cases:
        made = f"RelativeAttention({d_model}, {heads})"
        what = (f"{made}(h, memory) for h of shape {[batch, qlen, d_model]} and memory of shape "
                f"{[batch, mlen, d_model]}")
        h = rng.normal(size=(batch, qlen, d_model)).astype(np.float32)
        memory = rng.normal(size=(batch, mlen, d_model)).astype(np.float32)
        layer = call(lambda: layer_class(d_model, heads), what=made)
        call(lambda: layer(h, memory), what=f"the first call of {what}")  # builds the weights
        shapes = [tuple(w.shape) for w in call(lambda: layer.get_weights(), what=f"{made}.get_weights()")]
        d_head = d_model // heads
        expected_shapes = [(heads, d_head)] * 2 + [(d_model, heads, d_head)] * 4 + [(heads, d_head, d_model)]
        if shapes != expected_shapes:
            raise CheckFailed(
                f"after its first call, {made} has weights of shapes {shapes}, expected {expected_shapes} "
                "(u, v, then the query, key, value, position and output projections): use the layers that "
                "__init__ and build create, and create no new ones in call.")
        weights = [(rng.normal(size=s) / np.sqrt(s[0] if len(s) == 3 else 2)).astype(np.float32) for s in shapes]
        call(lambda: layer.set_weights(weights), what=f"{made}.set_weights(...)")
        got = to_numpy(call(lambda: layer(h, memory), what=what), what)
        expected = _attention_reference(h, memory, weights)
        if got.shape != expected.shape:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape} ([batch, qlen, d_model]).")
        variant = lambda **kwargs: _attention_reference(h, memory, weights, **kwargs)  # noqa: E731
        expect_close(got.astype(np.float64), expected, what, rtol=1e-3, atol=1e-4,
                     reference="brute-force relative attention over explicit distances",
                     likely_causes={
                         "u and v are swapped: u goes with the content keys, v with the positions.":
                             variant(swap_uv=True),
                         "term (b), q·r, is missing: the queries must meet the positions too.": variant(terms="acd"),
                         "term (d), v·r, is missing.": variant(terms="abc"),
                         "the position terms are missing: the logits need r = position(table of klen distances).":
                             variant(terms="ac"),
                         "the distances run the wrong way: the table's row 0 is distance klen − 1 (use "
                         "relative_positional_encoding(klen, d_model), unreversed).": variant(ascending=True),
                         "the mask ignores the memory: query i sees every memory position and the segment "
                         "keys up to itself, j ≤ mlen + i.": variant(see_memory=False),
                     })
    return ("equals brute-force relative attention (explicit distances, O(L²) loops) with the same weights, "
            "for 5 sizes incl. an empty memory and qlen = 1.")

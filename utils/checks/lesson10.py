"""Checks for lesson 10, memory beyond the window.

Pooling is compared with a brute-force loop over groups and with Keras's pooling layers;
the memory update with a slot-by-slot simulation of the FIFO and the compressed store, using
compression functions (defined here) that show which slots were compressed; the
attention-reconstruction loss with a float64 NumPy formula, and its gradients by where they
must (and must not) reach; the reach with a simulation that follows every token's position
through the memories; top-k retrieval with a full sort; the gated attention with a
brute-force softmax per query and head.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, call, expect_close, register, softmax, to_numpy, value_and_gradient

F32 = {"rtol": 1e-5, "atol": 1e-5}
LOOSE = {"rtol": 1e-4, "atol": 1e-5}  # float32 through softmax and several products


# --- compress -----------------------------------------------------------------------------


def _pool(memory: np.ndarray, rate: int, kind: str) -> np.ndarray:
    """Brute force: output slot j pools input slots j·rate … j·rate + rate − 1."""
    batch, n, d = memory.shape
    out = np.zeros((batch, n // rate, d), memory.dtype)
    for j in range(n // rate):
        group = memory[:, j * rate:(j + 1) * rate]
        out[:, j] = group.mean(axis=1) if kind == "mean" else group.max(axis=1)
    return out


@register("10-compress")
def check_compress(answer, rng: np.random.Generator) -> str:
    cases = [(1, 4, 2, 3), (2, 8, 4, 5), (3, 6, 3, 2), (2, 5, 5, 4), (1, 7, 1, 3),
             (int(rng.integers(1, 4)), 4 * int(rng.integers(1, 5)), 4, int(rng.integers(2, 9)))]
    for kind, layer in (("mean", keras.layers.AveragePooling1D), ("max", keras.layers.MaxPooling1D)):
        for batch, n, rate, d in cases:
            memory = rng.normal(size=(batch, n, d)).astype(np.float32)
            what = f"compress(memory, {rate}, {kind!r}) for memory of shape {list(memory.shape)}"
            got = to_numpy(call(answer, tf.constant(memory), rate, kind, what=what), what)
            keras_pool = np.asarray(layer(pool_size=rate, strides=rate)(memory))
            expected = _pool(memory, rate, kind)
            if not np.allclose(keras_pool, expected, **F32):  # two references that must agree
                raise RuntimeError("the brute-force pooling disagrees with Keras")
            other = "max" if kind == "mean" else "mean"
            strided = memory.reshape(batch, rate, n // rate, d)
            expect_close(got, expected, what, reference=f"keras.layers.{layer.__name__}(pool_size={rate}, "
                         f"strides={rate})", **F32, likely_causes={
                             f"you pooled with {other!r}; kind {kind!r} asks for {kind} pooling.":
                                 _pool(memory, rate, other),
                             "you grouped every rate-th slot together; a group is rate CONSECUTIVE slots: "
                             "reshape to [batch, n // rate, rate, d].":
                                 strided.mean(1) if kind == "mean" else strided.max(1),
                             "you summed each group; the mean divides by rate.": _pool(memory, rate, "mean") * rate,
                         })
    return "mean and max pooling agree with a loop over groups and Keras's pooling layers, for 6 shapes incl. rate 1."


# --- update_memories ----------------------------------------------------------------------


def first_of_each_pair(slots):
    """A compression function for the checks (rate 2) that keeps the first slot of each pair,
    so the result shows which slots were compressed."""
    return slots[:, 0::2]


def mean_of_each_three(slots):
    """A compression function for the checks (rate 3): the mean of each group of three slots."""
    shape = tf.shape(slots)
    return tf.reduce_mean(tf.reshape(slots, [shape[0], shape[1] // 3, 3, shape[2]]), axis=2)


def _reference_update(memory, cmemory, hidden, mem_len, cmem_len, compress):
    both = np.concatenate([memory, hidden], axis=1)
    old = max(both.shape[1] - mem_len, 0)
    evicted = both[:, :old]
    if old:
        cmemory = np.concatenate([cmemory, compress(evicted)], axis=1)
    return both[:, old:], cmemory[:, cmemory.shape[1] - min(cmem_len, cmemory.shape[1]):], evicted


def _np_first_of_each_pair(slots):
    return slots[:, 0::2]


def _np_mean_of_each_three(slots):
    b, n, d = slots.shape
    return slots.reshape(b, n // 3, 3, d).mean(axis=2)


@register("10-update_memories")
def check_update_memories(answer, rng: np.random.Generator) -> str:
    d = int(rng.integers(2, 5))
    # (batch, mlen, cmlen, qlen, mem_len, cmem_len, rate)
    cases = [(2, 0, 0, 4, 4, 2, 2),   # the first segment: nothing is evicted yet
             (2, 4, 0, 4, 4, 2, 2),   # the first eviction
             (1, 4, 2, 4, 4, 2, 2),   # the compressed memory is full: its oldest slots go
             (2, 6, 3, 6, 6, 4, 3),
             (1, 4, 2, 4, 4, 0, 2),   # no compressed memory at all (Transformer-XL)
             (2, 2, 1, 4, 6, 3, 2),   # memory not full yet: nothing evicted
             (3, 6, 2, 6, 3, 3, 3)]   # memory shorter than a segment
    for batch, mlen, cmlen, qlen, mem_len, cmem_len, rate in cases:
        memory, cmemory, hidden = (rng.normal(size=(batch, n, d)).astype(np.float32) for n in (mlen, cmlen, qlen))
        compress, np_compress = ((first_of_each_pair, _np_first_of_each_pair) if rate == 2
                                 else (mean_of_each_three, _np_mean_of_each_three))
        what = (f"update_memories(memory, cmemory, hidden, mem_len={mem_len}, cmem_len={cmem_len}, "
                f"compress_fn) with {mlen} memory, {cmlen} compressed and {qlen} new slots, rate {rate}")
        result = call(answer, *(tf.constant(a) for a in (memory, cmemory, hidden)), mem_len, cmem_len, compress,
                      what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise CheckFailed(f"{what} returned a {type(result).__name__}; expected three tensors "
                              "(memory, cmemory, evicted).")
        expected = _reference_update(memory, cmemory, hidden, mem_len, cmem_len, np_compress)
        both = np.concatenate([memory, hidden], axis=1)
        old = max(both.shape[1] - mem_len, 0)
        newest = np.concatenate([cmemory, np_compress(both[:, both.shape[1] - old:])], axis=1) if old else cmemory
        for index, name in enumerate(["memory", "cmemory", "evicted"]):
            got = to_numpy(result[index], f"{what}[{index}]")
            causes = {}
            if name == "cmemory":
                if old:
                    untruncated = np.concatenate([cmemory, np_compress(both[:, :old])], axis=1)
                    causes = {
                        "you compressed the NEWEST slots; compress the oldest ones, those that leave the memory.":
                            newest[:, newest.shape[1] - min(cmem_len, newest.shape[1]):],
                        "the compressed memory keeps growing: keep only its last cmem_len slots "
                        "(careful: x[:, -0:] is all of x).": untruncated,
                        "the newly compressed slots go in front; they are the most recent, so append them.":
                            np.concatenate([np_compress(both[:, :old]), cmemory], axis=1)[:, :expected[1].shape[1]],
                    }
                if got.shape != expected[1].shape:
                    hint = (" With cmem_len = 0 nothing is kept, but x[:, -0:] is all of x." if cmem_len == 0 else
                            " Keep only the last cmem_len slots of the compressed memory."
                            if got.shape[1:2] > expected[1].shape[1:2] else "")
                    raise CheckFailed(f"{what}: cmemory has shape {got.shape}, expected {expected[1].shape}.{hint}")
            expect_close(got, expected[index], f"{what}: {name}", reference="a slot-by-slot simulation",
                         **F32, likely_causes=causes)
    return ("memory, compressed memory and evicted slots match a slot-by-slot simulation in 7 cases, incl. "
            "the first segment, a full compressed memory and cmem_len = 0.")


# --- attention_reconstruction_loss --------------------------------------------------------


def _attend(q, memory, w_k, w_v):
    k, v = memory @ w_k, memory @ w_v
    weights = softmax(np.einsum("bid,bjd->bij", q, k) / np.sqrt(q.shape[-1]))
    return np.einsum("bij,bjd->bid", weights, v)


def _reconstruction(hidden, evicted, compressed, w_q, w_k, w_v, scale=True, project_compressed=True):
    q = hidden @ w_q
    if not scale:
        q = q * np.sqrt(q.shape[-1])
    full = _attend(q, evicted, w_k, w_v)
    if project_compressed:
        short = _attend(q, compressed, w_k, w_v)
    else:
        weights = softmax(np.einsum("bid,bjd->bij", q, compressed) / np.sqrt(q.shape[-1]))
        short = np.einsum("bij,bjd->bid", weights, compressed)
    return np.mean((full - short) ** 2)


def _reconstruction_tf(hidden, evicted, compressed, w_q, w_k, w_v):
    """The same loss in float64 TensorFlow, for its gradient with respect to ``compressed``."""
    def attend(q, memory):
        scores = tf.einsum("bid,bjd->bij", q, memory @ w_k) / np.sqrt(q.shape[-1])
        return tf.einsum("bij,bjd->bid", tf.nn.softmax(scores, axis=-1), memory @ w_v)
    q = hidden @ w_q
    return tf.reduce_mean((attend(q, evicted) - attend(q, compressed)) ** 2)


ARGUMENTS = ["hidden", "evicted", "compressed", "w_q", "w_k", "w_v"]


@register("10-attention_reconstruction_loss")
def check_attention_reconstruction_loss(answer, rng: np.random.Generator) -> str:
    cases = [(1, 3, 4, 2, 4, 4), (2, 5, 8, 4, 6, 3), (2, 4, 6, 3, 5, 5), (int(rng.integers(1, 4)), 4, 8, 2, 8, 4)]
    for batch, qlen, n, m, d, d_k in cases:
        hidden, evicted, compressed = (rng.normal(size=(batch, t, d)) for t in (qlen, n, m))
        weights = [rng.normal(size=(d, d_k)) / np.sqrt(d) for _ in range(3)]
        args = [a.astype(np.float32) for a in (hidden, evicted, compressed, *weights)]
        exact = [a.astype(np.float64) for a in args]
        what = (f"attention_reconstruction_loss(hidden, evicted, compressed, w_q, w_k, w_v) with {qlen} queries, "
                f"{n} evicted and {m} compressed slots, d = {d}, d_k = {d_k}")
        got = to_numpy(call(answer, *(tf.constant(a) for a in args), what=what), what)
        expected = _reconstruction(*exact)
        if got.shape != ():
            raise CheckFailed(f"{what} has shape {got.shape}; the loss is one number (a scalar).")
        causes = {"the scores are not divided by √d_k.": _reconstruction(*exact, scale=False),
                  "you summed the squared differences; take their mean.": expected * batch * qlen * d_k}
        if d == d_k:
            causes["the compressed slots are attended as they are; project them with w_k and w_v like the "
                   "evicted ones."] = _reconstruction(*exact, project_compressed=False)
        expect_close(got.astype(np.float64), expected, what, reference="mean((attn(q, evicted) − "
                     "attn(q, compressed))²)", **LOOSE, likely_causes=causes)
        compressed_64 = tf.constant(exact[2])
        with tf.GradientTape() as tape:
            tape.watch(compressed_64)
            reference = _reconstruction_tf(*[tf.constant(a) if i != 2 else compressed_64 for i, a in enumerate(exact)])
        expected_gradient = tape.gradient(reference, compressed_64).numpy()
        for wrt, name in enumerate(ARGUMENTS):
            _, gradient = value_and_gradient(answer, *args, wrt=wrt, what=what)
            reaches = gradient is not None and np.any(np.asarray(gradient) != 0)
            if name == "compressed":
                if not reaches:
                    raise CheckFailed(
                        f"{what}: no gradient reaches `compressed`, so this loss would train nothing. Stop the "
                        "gradient of the queries, the evicted slots and the weights, not of the compressed slots.")
                expect_close(np.asarray(gradient, np.float64), expected_gradient, f"the gradient of {what} "
                             "with respect to compressed", reference="TensorFlow's gradient of the formula", **LOOSE)
            elif reaches:
                raise CheckFailed(
                    f"{what}: a gradient reaches `{name}`. This loss must train only the compression "
                    f"function: wrap {name} in tf.stop_gradient, so the loss cannot change the layer's "
                    "projections, its queries or the memory it reconstructs.")
    return ("the loss matches the formula in 4 cases, and its gradient reaches the compressed slots (as "
            "TensorFlow's) and nothing else.")


# --- reach --------------------------------------------------------------------------------


def _simulated_reach(segment: int, mem_len: int, cmem_len: int, rate: int) -> int:
    """Follow token positions through many segments of the memory update and return the
    largest distance from a segment's last token back to a token its attention still reads
    (directly or inside a compressed slot)."""
    memory, cmemory, position = [], [], 0  # memory: positions; cmemory: lists of positions
    farthest = 0
    for _ in range(8 + (mem_len + rate * cmem_len) // segment):
        hidden = list(range(position, position + segment))
        last = hidden[-1]
        visible = [p for slot in cmemory for p in slot] + memory + hidden
        farthest = max(farthest, last - min(visible))
        both = memory + hidden
        old = max(len(both) - mem_len, 0)
        evicted, memory = both[:old], both[old:]
        cmemory = cmemory + [evicted[i:i + rate] for i in range(0, old, rate)]
        cmemory = cmemory[len(cmemory) - min(cmem_len, len(cmemory)):]
        position += segment
    return farthest


@register("10-reach")
def check_reach(answer, rng: np.random.Generator) -> str:
    cases = [(16, 32, 0, 4), (16, 16, 16, 4), (8, 16, 4, 2), (4, 8, 2, 4), (1, 1, 0, 2), (6, 12, 5, 3),
             (8, 0, 0, 2)]
    for _ in range(3):
        rate = int(rng.integers(1, 5))
        segment = rate * int(rng.integers(1, 5))
        cases.append((segment, segment * int(rng.integers(0, 4)), int(rng.integers(0, 9)), rate))
    for segment, mem_len, cmem_len, rate in cases:
        what = f"reach(segment={segment}, mem_len={mem_len}, cmem_len={cmem_len}, rate={rate})"
        got = call(answer, segment, mem_len, cmem_len, rate, what=what)
        try:
            got = int(np.asarray(got))
        except (TypeError, ValueError):
            raise CheckFailed(f"{what} returned {got!r}; expected a whole number of tokens.") from None
        expected = _simulated_reach(segment, mem_len, cmem_len, rate)
        if got != expected:
            hint = ""
            if got == expected + 1:
                hint = " One too many: the last token of a segment sees segment − 1 earlier tokens of its own segment."
            elif got == mem_len + rate * cmem_len:
                hint = " You left out the tokens of the segment itself, before the last one."
            elif got == segment - 1 + mem_len + cmem_len and rate > 1:
                hint = " Each compressed slot stands for `rate` tokens."
            raise CheckFailed(f"{what} returned {got}; following every token through the memories gives "
                              f"{expected}.{hint}")
    return "matches a simulation that follows every token through the memories, for 10 settings."


# --- knn_lookup ---------------------------------------------------------------------------


def _top_k(queries, keys, values, k, largest=True):
    """Brute force: a full sort of the scores of each query."""
    scores = np.einsum("...td,...nd->...tn", queries, keys)
    order = np.argsort(-scores if largest else scores, axis=-1, kind="stable")[..., :k]
    top = np.take_along_axis(scores, order, axis=-1)
    lead = scores.shape[:-2]
    retrieved = np.zeros(top.shape + values.shape[-1:], values.dtype)
    for index in np.ndindex(*lead, scores.shape[-2]):
        retrieved[index] = values[index[:-1]][order[index]]
    return top, retrieved


@register("10-knn_lookup")
def check_knn_lookup(answer, rng: np.random.Generator) -> str:
    cases = [((2,), 3, 10, 4, 3, 2), ((1,), 1, 5, 3, 2, 5), ((2, 3), 4, 12, 6, 5, 4), ((3,), 2, 6, 2, 2, 1),
             ((int(rng.integers(1, 4)), 2), 5, int(rng.integers(8, 30)), 8, 4, 8)]
    for lead, tq, n, d, dv, k in cases:
        queries = rng.normal(size=lead + (tq, d)).astype(np.float32)
        keys = rng.normal(size=lead + (n, d)).astype(np.float32)
        values = rng.normal(size=lead + (n, dv)).astype(np.float32)
        what = (f"knn_lookup(queries, keys, values, k={k}) with queries {list(queries.shape)}, keys "
                f"{list(keys.shape)}, values {list(values.shape)}")
        result = call(answer, tf.constant(queries), tf.constant(keys), tf.constant(values), k, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"{what} returned a {type(result).__name__}; expected a pair (scores, retrieved).")
        scores, retrieved = (to_numpy(r, f"{what}[{i}]") for i, r in enumerate(result))
        top, expected = _top_k(queries, keys, values, k)
        low, low_values = _top_k(queries, keys, values, k, largest=False)
        expect_close(scores, top, f"{what}: scores", reference="a full sort (largest first)", **F32, likely_causes={
            "you took the k SMALLEST scores; top-k keeps the largest.": low,
            "the scores are scaled by 1/√d; return the plain dot products (the layer scales them).":
                top / np.sqrt(d),
            "the scores are in ascending order; list them largest first.": top[..., ::-1],
        })
        _, retrieved_keys = _top_k(queries, keys, keys, k)
        if retrieved.shape == retrieved_keys.shape != expected.shape:
            raise CheckFailed(f"{what}: retrieved values have shape {retrieved.shape}, expected {expected.shape}; "
                              "you returned the keys; return the values stored with them.")
        expect_close(retrieved, expected, f"{what}: retrieved values", reference="the values of the top-k keys",
                     **F32, likely_causes={
                         "you returned the keys; return the values stored with them.": retrieved_keys,
                         "you returned the values of the k smallest scores.": low_values,
                     })
    return "scores and values match a full sort for 5 shapes, incl. a head axis, k = 1 and k = N."


# --- gated_memory_attention ---------------------------------------------------------------


def _gated(local_scores, local_values, memory_scores, memory_values, gate_bias, gate=None, joint=False):
    g = 1 / (1 + np.exp(-gate_bias)) if gate is None else gate
    g = g[None, :, None, None]
    if joint:
        weights = softmax(np.concatenate([local_scores, memory_scores], axis=-1))
        s = local_scores.shape[-1]
        return (np.einsum("bhij,bhjd->bhid", weights[..., :s], local_values)
                + np.einsum("bhik,bhikd->bhid", weights[..., s:], memory_values))
    local = np.einsum("bhij,bhjd->bhid", softmax(local_scores), local_values)
    memory = np.einsum("bhik,bhikd->bhid", softmax(memory_scores), memory_values)
    return (1 - g) * local + g * memory


@register("10-gated_memory_attention")
def check_gated_memory_attention(answer, rng: np.random.Generator) -> str:
    cases = [(1, 1, 3, 3, 2, 2), (2, 2, 4, 6, 3, 4), (2, 3, 5, 5, 4, 1), (int(rng.integers(1, 4)), 2, 4, 7, 8, 3)]
    checked = 0
    for batch, heads, t, s, k, dv in cases:
        local_scores = rng.normal(size=(batch, heads, t, s)) * 2
        local_scores[..., -1] = np.where(rng.random((batch, heads, t)) < 0.5, -1e9, local_scores[..., -1])
        local_values = rng.normal(size=(batch, heads, s, dv))
        memory_scores = rng.normal(size=(batch, heads, t, k)) * 2
        memory_values = rng.normal(size=(batch, heads, t, k, dv))
        for gate_bias in (rng.normal(size=heads) * 2, np.full(heads, -30.0), np.full(heads, 30.0)):
            args = [a.astype(np.float32) for a in (local_scores, local_values, memory_scores, memory_values, gate_bias)]
            exact = [a.astype(np.float64) for a in args]
            what = (f"gated_memory_attention(local_scores, local_values, memory_scores, memory_values, gate_bias) "
                    f"with {heads} heads, {t} queries, {s} local keys, k = {k}, gate_bias = {np.round(gate_bias, 2)}")
            got = to_numpy(call(answer, *(tf.constant(a) for a in args), what=what), what)
            g = 1 / (1 + np.exp(-exact[4]))
            expect_close(got.astype(np.float64), _gated(*exact), what, reference="(1 − g)·local + g·memory "
                         "with g = sigmoid(gate_bias)", **LOOSE, likely_causes={
                             "the gate is the wrong way round: g weighs the MEMORY output, 1 − g the local one.":
                                 _gated(*exact, gate=1 - g),
                             "the gate is used without sigmoid: g = sigmoid(gate_bias).": _gated(*exact, gate=exact[4]),
                             "you took one softmax over local and memory scores together; each gets its own "
                             "softmax, and the gate mixes the two outputs.": _gated(*exact, joint=True),
                         })
            checked += 1
    return (f"matches (1 − g)·softmax(local)·V + g·softmax(memory)·V_mem in {checked} cases, incl. g ≈ 0 "
            "(local attention only) and g ≈ 1 (memory only).")

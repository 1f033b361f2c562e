"""Lesson 10's wrong answers (run by tests/test_checks.py), the causes its messages name, and
the notebook's compressive layer: its reconstruction loss trains f_c and nothing else."""
import keras
import nbformat
import numpy as np
import pytest
import tensorflow as tf

from solved import Elsewhere, SOLUTIONS, solution_answers
from utils import checks, lessons


def pool(kind, group="consecutive", total=False):
    def compress(memory, rate, _kind):
        b, n, d = memory.shape
        if group == "consecutive":
            groups = tf.reshape(memory, [b, n // rate, rate, d])
        else:  # every rate-th slot together
            groups = tf.transpose(tf.reshape(memory, [b, rate, n // rate, d]), [0, 2, 1, 3])
        reduce = {"mean": tf.reduce_mean, "max": tf.reduce_max, "sum": tf.reduce_sum}[kind if kind else _kind]
        return reduce(groups, axis=2)
    return compress


def update(which="oldest", truncate=True, prepend=False, minus_zero=False, compress_segment=False):
    def update_memories(memory, cmemory, hidden, mem_len, cmem_len, compress_fn):
        both = tf.concat([memory, hidden], axis=1)
        n = max(both.shape[1] - mem_len, 0)
        evicted, kept = both[:, :n], both[:, n:]
        if n:
            source = both[:, both.shape[1] - n:] if which == "newest" else evicted
            if compress_segment:
                source = hidden[:, :n]
            new = compress_fn(source)
            cmemory = tf.concat([new, cmemory] if prepend else [cmemory, new], axis=1)
        if minus_zero:
            cmemory = cmemory[:, -cmem_len:]
        elif truncate:
            cmemory = (cmemory[:, :cmem_len] if prepend else cmemory[:, max(cmemory.shape[1] - cmem_len, 0):])
        return kept, cmemory, evicted
    return update_memories


def reconstruction(stop="right", scale=True, project=True, reduce=tf.reduce_mean):
    """stop: "right" (the solution), "none" (nothing stopped) or "all" (compressed stopped too)."""
    def loss(hidden, evicted, compressed, w_q, w_k, w_v):
        sg = (lambda t: t) if stop == "none" else tf.stop_gradient
        hidden, evicted, w_q, w_k, w_v = (sg(t) for t in (hidden, evicted, w_q, w_k, w_v))
        if stop == "all":
            compressed = tf.stop_gradient(compressed)
        q = hidden @ w_q
        if scale:
            q = q / tf.sqrt(float(w_k.shape[1]))

        def attend(slots, project_slots=True):
            k, v = (slots @ w_k, slots @ w_v) if project_slots else (slots, slots)
            return tf.nn.softmax(tf.einsum("bid,bjd->bij", q, k), axis=-1) @ v

        return reduce((attend(evicted) - attend(compressed, project)) ** 2)
    return loss


def reach_with(formula):
    return lambda segment, mem_len, cmem_len, rate: formula(segment, mem_len, cmem_len, rate)


def lookup(largest=True, gather_keys=False, scale=False, ascending=False):
    def knn_lookup(queries, keys, values, k):
        scores = tf.einsum("...td,...nd->...tn", queries, keys)
        if scale:
            scores = scores / tf.sqrt(float(queries.shape[-1]))
        top, index = tf.math.top_k(scores if largest else -scores, k=k)
        top = top if largest else -top
        if ascending:
            top, index = top[..., ::-1], index[..., ::-1]
        source = keys if gather_keys else values
        return top, tf.gather(source, index, batch_dims=len(values.shape) - 2)
    return knn_lookup


def gated(swap=False, no_sigmoid=False, joint=False):
    def attention(local_scores, local_values, memory_scores, memory_values, gate_bias):
        if joint:
            weights = tf.nn.softmax(tf.concat([local_scores, memory_scores], axis=-1), axis=-1)
            s = local_scores.shape[-1]
            return (tf.einsum("bhij,bhjd->bhid", weights[..., :s], local_values)
                    + tf.einsum("bhik,bhikd->bhid", weights[..., s:], memory_values))
        local = tf.einsum("bhij,bhjd->bhid", tf.nn.softmax(local_scores, axis=-1), local_values)
        remembered = tf.einsum("bhik,bhikd->bhid", tf.nn.softmax(memory_scores, axis=-1), memory_values)
        g = (gate_bias if no_sigmoid else tf.sigmoid(gate_bias))[None, :, None, None]
        return g * local + (1 - g) * remembered if swap else (1 - g) * local + g * remembered
    return attention


MUTANTS = {
    "10-compress": {
        "mean for max": pool("mean"),
        "every rate-th slot grouped": pool(None, group="strided"),
        "sum instead of mean": pool("sum"),
        "max for mean": pool("max"),
    },
    "10-update_memories": {
        "compresses the newest slots": update(which="newest"),
        "compressed memory not truncated": update(truncate=False),
        "new compressed slots in front": update(prepend=True),
        "x[:, -0:] keeps everything at cmem_len 0": update(minus_zero=True),
        "compresses the segment, not the evicted slots": update(compress_segment=True),
    },
    "10-attention_reconstruction_loss": {
        "nothing stopped": reconstruction(stop="none"),
        "everything stopped: trains nothing": reconstruction(stop="all"),
        "not scaled by √d_k": reconstruction(scale=False),
        "compressed slots not projected": reconstruction(project=False),
        "sum instead of mean": reconstruction(reduce=tf.reduce_sum),
    },
    "10-reach": {
        "without the segment": reach_with(lambda s, m, c, r: m + r * c),
        "one too many": reach_with(lambda s, m, c, r: s + m + r * c),
        "compressed slots count one token": reach_with(lambda s, m, c, r: s - 1 + m + c),
        "compressed slots ignored": reach_with(lambda s, m, c, r: s - 1 + m),
    },
    "10-knn_lookup": {
        "smallest scores": lookup(largest=False),
        "returns keys": lookup(gather_keys=True),
        "scaled scores": lookup(scale=True),
        "ascending order": lookup(ascending=True),
    },
    "10-gated_memory_attention": {
        "gate swapped": gated(swap=True),
        "no sigmoid": gated(no_sigmoid=True),
        "one joint softmax": gated(joint=True),
    },
}


@pytest.mark.parametrize("exercise,mutant,words", [
    ("10-compress", "every rate-th slot grouped", "CONSECUTIVE"),
    ("10-compress", "sum instead of mean", "summed"),
    ("10-update_memories", "compresses the newest slots", "NEWEST"),
    ("10-update_memories", "compressed memory not truncated", "last cmem_len"),
    ("10-update_memories", "x[:, -0:] keeps everything at cmem_len 0", "x[:, -0:]"),
    ("10-attention_reconstruction_loss", "nothing stopped", "tf.stop_gradient"),
    ("10-attention_reconstruction_loss", "everything stopped: trains nothing", "train nothing"),
    ("10-attention_reconstruction_loss", "not scaled by √d_k", "√d_k"),
    ("10-reach", "one too many", "One too many"),
    ("10-reach", "compressed slots count one token", "`rate` tokens"),
    ("10-knn_lookup", "smallest scores", "SMALLEST"),
    ("10-knn_lookup", "returns keys", "returned the keys"),
    ("10-gated_memory_attention", "gate swapped", "wrong way round"),
    ("10-gated_memory_attention", "one joint softmax", "own softmax"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    assert words in checks.run(exercise, MUTANTS[exercise][mutant]).message


def test_the_gradient_checks_run_where_the_answer_lives():
    """An answer that runs elsewhere (like the grader's proxy) is differentiated there."""
    exercise = "10-attention_reconstruction_loss"
    for mutant, words in [("nothing stopped", "tf.stop_gradient"), ("everything stopped: trains nothing", "nothing")]:
        result = checks.run(exercise, Elsewhere(MUTANTS[exercise][mutant]))
        assert result.status == "failed" and words in result.message
    assert checks.run(exercise, Elsewhere(solution_answers("10")["attention_reconstruction_loss"])).status == "passed"


def notebook_layer_namespace() -> dict:
    """The solution notebook's answers, constants and layer classes, as the notebook defines them."""
    namespace = dict(solution_answers("10"))
    from utils import memory
    namespace.update(memory=memory, RATE=4, SEGMENT=memory.SEGMENT)
    for cell in nbformat.read(SOLUTIONS["10"], as_version=4).cells:
        if cell.cell_type == "code" and not lessons.is_answer_cell(cell) and (
                "class CompressiveAttention" in cell.source or "class NeedleModel" in cell.source):
            exec(compile(cell.source, "10_memory_beyond_the_window.ipynb", "exec"), namespace)
    return namespace


def test_reconstruction_loss_reaches_f_c_and_nothing_else():
    namespace = notebook_layer_namespace()
    layer = namespace["CompressiveAttention"](mem_len=8, cmem_len=4, compression="conv")
    d = namespace["D_MODEL"]
    h, mem = tf.random.normal([2, 8, d]), tf.random.normal([2, 8, d])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(h)
        output, new_mem, new_cmem = layer(h, mem, tf.zeros([2, 0, d]))  # 8 slots evicted, 2 compressed
        reconstruction = sum(layer.losses)
    assert len(layer.losses) == 1 and new_cmem.shape == (2, 2, d) and new_mem.shape == (2, 8, d)

    def reaches(variables):
        return [g is not None and np.any(g.numpy() != 0) for g in tape.gradient(reconstruction, variables)]

    assert all(reaches(layer.conv.trainable_variables))
    for projection in (layer.query, layer.key, layer.value, layer.output_projection):
        assert not any(reaches(projection.trainable_variables)), projection.name
    assert tape.gradient(reconstruction, h) is None
    # and the stored memories carry no gradient back to the segment or to f_c
    assert tape.gradient(new_cmem, layer.conv.trainable_variables) == [None, None]
    assert tape.gradient(new_mem, h) is None


def test_task_loss_does_not_reach_f_c():
    namespace = notebook_layer_namespace()
    model = namespace["NeedleModel"](16, 16, "conv")
    tokens = tf.constant(np.random.default_rng(0).integers(0, 25, size=(2, 128)), tf.int32)
    with tf.GradientTape() as tape:
        logits = model(tokens)
    gradients = tape.gradient(logits, model.attention.conv.trainable_variables)
    assert all(g is None for g in gradients)
    assert isinstance(model.attention.conv, keras.layers.Dense)

"""Evaluation speed: a Transformer that caches its memory against one that recomputes.

A vanilla Transformer language model sees a fixed window of ``context_length`` tokens. To
score a long text it slides that window one token at a time and recomputes every hidden
state in the window for each new token. Transformer-XL keeps the hidden states of the
previous segment as a memory, so it processes a whole new segment per forward pass and
every token still sees at least ``context_length`` earlier tokens.

:func:`eval_speed` times both on tiny untrained models built from plain Keras layers. The
attention is ordinary (absolute, here without any position signal) multi-head attention:
what is measured is caching against recomputation, which does not depend on how positions
are encoded or on what the weights are.
"""
import time

import keras
import numpy as np
import tensorflow as tf

VOCAB = 64
D_MODEL = 64
HEADS = 4
LAYERS = 2
SEGMENTS = 4  # segments the cached model scores per timing
WINDOWS = 16  # tokens the sliding-window model scores per timing


class CachingBlock(keras.layers.Layer):
    """A pre-LayerNorm Transformer block whose queries attend over a separate context."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm_attention = keras.layers.LayerNormalization()
        self.attention = keras.layers.MultiHeadAttention(HEADS, D_MODEL // HEADS)
        self.norm_ffn = keras.layers.LayerNormalization()
        self.ffn_in = keras.layers.Dense(4 * D_MODEL, activation="relu")
        self.ffn_out = keras.layers.Dense(D_MODEL)

    def call(self, h, context, mask):
        h = h + self.attention(self.norm_attention(h), self.norm_attention(context), attention_mask=mask)
        return h + self.ffn_out(self.ffn_in(self.norm_ffn(h)))


def _causal_mask(qlen: int, mlen: int) -> tf.Tensor:
    """[1, qlen, mlen + qlen]: query i sees the whole memory and segment keys up to itself."""
    keys = tf.range(mlen + qlen)[None, :]
    queries = tf.range(qlen)[:, None]
    return (keys <= mlen + queries)[None]


class CachingLanguageModel(keras.Model):
    """Embedding, a stack of blocks and a softmax head; ``call`` returns the new memory too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(VOCAB, D_MODEL)
        self.blocks = [CachingBlock() for _ in range(LAYERS)]
        self.head = keras.layers.Dense(VOCAB)

    def call(self, tokens, memories):
        """tokens [batch, qlen]; memories: per layer [batch, mlen, D_MODEL] (mlen may be 0)."""
        h = self.embed(tokens)
        mask = _causal_mask(tf.shape(tokens)[1], tf.shape(memories[0])[1])
        new_memories = []
        for block, memory in zip(self.blocks, memories):
            context = tf.concat([memory, h], axis=1)
            keep_from = tf.shape(context)[1] - tf.shape(memory)[1]  # the memory keeps its length
            new_memories.append(tf.stop_gradient(context[:, keep_from:]))
            h = block(h, context, mask)
        return self.head(h), new_memories


def _best_seconds(run, repeats: int) -> float:
    """Fastest of ``repeats`` timed runs, after one untimed run that traces and warms up."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def eval_speed(context_length: int, repeats: int = 3) -> dict:
    """Tokens per second when scoring a token stream with ``context_length`` tokens of context.

    - cached XL: segments of ``context_length`` tokens, each attending over a memory of the
      previous ``context_length`` hidden states per layer (one forward pass per segment);
    - vanilla sliding window: one forward pass over the last ``context_length`` tokens for
      every scored token.

    Both use the same untrained 2-layer model (d_model 64, batch 1). Returns a dict with
    ``context_length``, ``xl_tokens_per_second``, ``vanilla_tokens_per_second`` and
    ``speedup`` (their ratio). Timings are the best of ``repeats`` runs.
    """
    model = CachingLanguageModel()
    rng = np.random.default_rng(0)
    stream = tf.constant(rng.integers(0, VOCAB, size=(1, (SEGMENTS + 1) * context_length)), tf.int32)
    empty = [tf.zeros([1, 0, D_MODEL]) for _ in range(LAYERS)]
    model(stream[:, :context_length], empty)  # build the weights

    @tf.function(reduce_retracing=True)
    def forward(tokens, memories):
        logits, memories = model(tokens, memories)
        return tf.argmax(logits[:, -1], axis=-1), memories

    _, warm_memories = forward(stream[:, :context_length], [tf.zeros([1, context_length, D_MODEL])] * LAYERS)

    def cached_xl():
        memories = warm_memories
        for s in range(1, SEGMENTS + 1):
            _, memories = forward(stream[:, s * context_length:(s + 1) * context_length], memories)
        return memories[0].numpy()

    def sliding_window():
        for t in range(WINDOWS):
            prediction, _ = forward(stream[:, t + 1:t + 1 + context_length], empty)
        return prediction.numpy()

    xl_rate = SEGMENTS * context_length / _best_seconds(cached_xl, repeats)
    vanilla_rate = WINDOWS / _best_seconds(sliding_window, repeats)
    return {
        "context_length": context_length,
        "xl_tokens_per_second": xl_rate,
        "vanilla_tokens_per_second": vanilla_rate,
        "speedup": xl_rate / vanilla_rate,
    }

"""utils.xl.eval_speed: the benchmark helper shared by lesson 09 and the benchmark command."""
import numpy as np
import tensorflow as tf

import utils  # noqa: F401  (imports TensorFlow quietly)
from utils import xl


def test_eval_speed_reports_both_rates_and_their_ratio():
    result = xl.eval_speed(8, repeats=1)
    assert set(result) == {"context_length", "xl_tokens_per_second", "vanilla_tokens_per_second", "speedup"}
    assert result["context_length"] == 8
    assert result["xl_tokens_per_second"] > 0 and result["vanilla_tokens_per_second"] > 0
    assert np.isclose(result["speedup"], result["xl_tokens_per_second"] / result["vanilla_tokens_per_second"])


def test_the_cached_model_keeps_its_memory_length_and_stops_gradients():
    model = xl.CachingLanguageModel()
    tokens = tf.constant(np.arange(10).reshape(2, 5) % xl.VOCAB, tf.int32)
    memories = [tf.random.normal([2, 3, xl.D_MODEL]) for _ in range(xl.LAYERS)]
    with tf.GradientTape() as tape:
        tape.watch(memories)
        logits, new_memories = model(tokens, memories)
    assert logits.shape == (2, 5, xl.VOCAB)
    assert [m.shape for m in new_memories] == [(2, 3, xl.D_MODEL)] * xl.LAYERS
    assert all(g is None for g in tape.gradient(new_memories, memories))


def test_the_mask_lets_queries_see_the_memory_and_their_past_only():
    mask = xl._causal_mask(2, 3).numpy()[0]
    assert mask.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_an_empty_memory_gives_an_empty_memory():
    model = xl.CachingLanguageModel()
    _, new_memories = model(tf.zeros([1, 4], tf.int32), [tf.zeros([1, 0, xl.D_MODEL])] * xl.LAYERS)
    assert all(m.shape[1] == 0 for m in new_memories)

"""Lesson 05's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from utils import checks, text
from solved import solution_answers

SEEDS = [0, 1, 2]


def answers() -> dict:
    return solution_answers("05")


# --- wrong tokenizers ---------------------------------------------------------------------

def _split(texts):
    """The right split, so that each wrong tokenizer below has exactly one mistake."""
    return tf_text.regex_split(texts, text.SPLIT_PATTERN, text.KEEP_PATTERN)


def no_case_folding(texts):
    return _split(tf_text.normalize_utf8(texts, "NFKC"))


def lowercase_only(texts):
    return _split(tf.strings.lower(texts, encoding="utf-8"))


def whitespace_split(texts):
    return tf_text.WhitespaceTokenizer().tokenize(tf_text.case_fold_utf8(texts))


def characters(texts):
    return tf.strings.unicode_split(tf_text.case_fold_utf8(texts), "UTF-8")


def padded_dense(texts):
    return tf_text.UnicodeScriptTokenizer().tokenize(tf_text.case_fold_utf8(texts)).to_tensor()


def nfd(texts):
    return _split(tf_text.normalize_utf8(tf_text.case_fold_utf8(texts), "NFD"))


def unicode_script_split(texts):
    """The pipeline before punctuation was split from digits: "42," stays one token."""
    return tf_text.UnicodeScriptTokenizer().tokenize(tf_text.normalize_utf8(tf_text.case_fold_utf8(texts), "NFKC"))


# --- wrong WordPiece splits ---------------------------------------------------------------

def _pieces(word, vocabulary, longest=True, marked=True, partial=False):
    pieces, start = [], 0
    while start < len(word):
        ends = range(len(word), start, -1) if longest else range(start + 1, len(word) + 1)
        prefix = "##" if start and marked else ""
        end = next((end for end in ends if prefix + word[start:end] in vocabulary), None)
        if end is None:
            if not partial:
                return ["[UNK]"]
            pieces, start = pieces + ["[UNK]"], start + 1
            continue
        pieces.append(prefix + word[start:end])
        start = end
    return pieces


def shortest_first(word, vocabulary):
    return _pieces(word, vocabulary, longest=False)


def no_continuation_prefix(word, vocabulary):
    return _pieces(word, vocabulary, marked=False)


def unknown_only_where_stuck(word, vocabulary):
    return _pieces(word, vocabulary, partial=True)


def whole_words_only(word, vocabulary):
    return [word] if word in vocabulary else ["[UNK]"]


# --- wrong vocabularies ---------------------------------------------------------------------

def _counted(tokens):
    words, _, counts = tf.unique_with_counts(tokens.flat_values)
    return [w.decode() for w in words.numpy()], counts.numpy()


def least_frequent_first(tokens, max_size):
    words, counts = _counted(tokens)
    return [words[i] for i in counts.argsort(kind="stable")][:max_size]


def first_seen_order(tokens, max_size):
    return _counted(tokens)[0][:max_size]


def with_reserved_tokens(tokens, max_size):
    return ["", "[UNK]"] + answers()["build_vocabulary"](tokens, max_size)


def every_token(tokens, max_size):
    return [t.decode() for t in tokens.flat_values.numpy()][:max_size]


def one_too_few(tokens, max_size):
    return answers()["build_vocabulary"](tokens, max_size)[:-1]


def ignores_max_size(tokens, max_size):
    return answers()["build_vocabulary"](tokens, 10**6)


# --- wrong perplexities ----------------------------------------------------------------------

def _token_nll(targets, logits):
    return keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)


def _real(targets, dtype=tf.float32):
    return tf.cast(targets != 0, dtype)


def padding_counted(targets, logits):
    return tf.exp(tf.reduce_mean(_token_nll(targets, logits)))


def cross_entropy_only(targets, logits):
    mask = _real(targets)
    return tf.reduce_sum(_token_nll(targets, logits) * mask) / tf.reduce_sum(mask)


def summed(targets, logits):
    return tf.exp(tf.reduce_sum(_token_nll(targets, logits) * _real(targets)))


def mean_of_exp(targets, logits):
    mask = _real(targets)
    return tf.reduce_sum(tf.exp(_token_nll(targets, logits)) * mask) / tf.reduce_sum(mask)


def log_of_softmax(targets, logits):
    probs = tf.gather(tf.nn.softmax(logits), targets, batch_dims=2)
    mask = _real(targets)
    return tf.exp(-tf.reduce_sum(tf.math.log(probs) * mask) / tf.reduce_sum(mask))


def base_two(targets, logits):
    mask = _real(targets)
    return 2.0 ** (tf.reduce_sum(_token_nll(targets, logits) * mask) / tf.reduce_sum(mask))


# --- wrong samplers ----------------------------------------------------------------------------

def temperature_multiplied(logits, temperature, num_samples, seed=None):
    return keras.random.categorical(logits * temperature, num_samples, seed=seed)


def temperature_ignored(logits, temperature, num_samples, seed=None):
    return keras.random.categorical(logits, num_samples, seed=seed)


def argmax(logits, temperature, num_samples, seed=None):
    return tf.repeat(tf.argmax(logits, axis=-1)[:, None], num_samples, axis=1)


def probabilities_as_logits(logits, temperature, num_samples, seed=None):
    return keras.random.categorical(tf.nn.softmax(logits / temperature), num_samples, seed=seed)


def one_sample_only(logits, temperature, num_samples, seed=None):
    return keras.random.categorical(logits / temperature, 1, seed=seed)


def floats(logits, temperature, num_samples, seed=None):
    return tf.cast(keras.random.categorical(logits / temperature, num_samples, seed=seed), tf.float32)


# --- wrong autoencoders ----------------------------------------------------------------------------

def the_broken_original(time_steps, features, units):
    inputs = keras.Input((time_steps, features))
    encoded = keras.layers.LSTM(units)(inputs)
    decoded = keras.layers.LSTM(units, return_sequences=True)(encoded)
    return keras.Model(inputs, keras.layers.Dense(features)(decoded))


def decoder_returns_last_output_only(time_steps, features, units):
    inputs = keras.Input((time_steps, features))
    encoded = keras.layers.LSTM(units)(inputs)
    decoded = keras.layers.LSTM(units)(keras.layers.RepeatVector(time_steps)(encoded))
    return keras.Model(inputs, keras.layers.Dense(features)(decoded))


def repeated_units_times(time_steps, features, units):
    inputs = keras.Input((time_steps, features))
    encoded = keras.layers.LSTM(units)(inputs)
    decoded = keras.layers.LSTM(units, return_sequences=True)(keras.layers.RepeatVector(units)(encoded))
    return keras.Model(inputs, keras.layers.Dense(features)(decoded))


def no_lstm_at_all(time_steps, features, units):
    inputs = keras.Input((time_steps, features))
    return keras.Model(inputs, keras.layers.Dense(features)(keras.layers.Dense(units)(inputs)))


MUTANTS = {
    "05-tokenize": {
        "no case folding": no_case_folding,
        "lower() instead of case folding, no normalization": lowercase_only,
        "whitespace tokenizer": whitespace_split,
        "characters": characters,
        "dense padded tensor": padded_dense,
        "NFD": nfd,
        "UnicodeScriptTokenizer keeps 42, together": unicode_script_split,
    },
    "05-wordpiece": {
        "shortest match first": shortest_first,
        "no ## on continuations": no_continuation_prefix,
        "[UNK] only for the stuck part": unknown_only_where_stuck,
        "whole words only": whole_words_only,
    },
    "05-build_vocabulary": {
        "least frequent first": least_frequent_first,
        "first-seen order": first_seen_order,
        "padding and [UNK] included": with_reserved_tokens,
        "every token, duplicates": every_token,
        "one too few": one_too_few,
        "max_size ignored": ignores_max_size,
    },
    "05-perplexity": {
        "padding counted": padding_counted,
        "cross-entropy, no exp": cross_entropy_only,
        "summed": summed,
        "mean of exp": mean_of_exp,
        "log of softmax underflows": log_of_softmax,
        "base 2": base_two,
    },
    "05-sample_with_temperature": {
        "temperature multiplied": temperature_multiplied,
        "temperature ignored": temperature_ignored,
        "argmax": argmax,
        "probabilities passed as logits": probabilities_as_logits,
        "one sample only": one_sample_only,
        "float ids": floats,
    },
    "05-build_autoencoder": {
        "the broken original": the_broken_original,
        "decoder drops the time axis": decoder_returns_last_output_only,
        "RepeatVector(units)": repeated_units_times,
        "no LSTM": no_lstm_at_all,
    },
}


@pytest.mark.parametrize("exercise,mutant,words", [
    ("05-tokenize", "no case folding", "case_fold_utf8"),
    ("05-tokenize", "whitespace tokenizer", "not only at whitespace"),
    ("05-tokenize", "UnicodeScriptTokenizer keeps 42, together", "same script"),
    ("05-wordpiece", "shortest match first", "longest"),
    ("05-wordpiece", "no ## on continuations", "prefix"),
    ("05-wordpiece", "[UNK] only for the stuck part", "whole word"),
    ("05-tokenize", "dense padded tensor", "RaggedTensor"),
    ("05-build_vocabulary", "least frequent first", "most frequent"),
    ("05-build_vocabulary", "padding and [UNK] included", "StringLookup adds"),
    ("05-perplexity", "padding counted", "padding counted"),
    ("05-perplexity", "cross-entropy, no exp", "exponential"),
    ("05-perplexity", "log of softmax underflows", "log_softmax"),
    ("05-sample_with_temperature", "temperature multiplied", "multiplied by the temperature"),
    ("05-sample_with_temperature", "temperature ignored", "temperature is ignored"),
    ("05-sample_with_temperature", "argmax", "argmax"),
    ("05-sample_with_temperature", "probabilities passed as logits", "probabilities were passed"),
    ("05-build_autoencoder", "the broken original", "RepeatVector"),
    ("05-build_autoencoder", "decoder drops the time axis", "return_sequences=True"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    for seed in SEEDS:
        message = checks.run(exercise, MUTANTS[exercise][mutant], seed=seed).message
        assert words in message, f"seed {seed}: {message}"


def test_perplexity_cases_stay_finite_in_float32():
    """Large logits once drew cases whose true perplexity overflows float32, failing right answers."""
    from utils.checks import lesson05

    rng = np.random.default_rng(0)
    for _ in range(300):
        logits, targets, _ = lesson05._perplexity_case(rng, 1, 1, 2, 30.0)
        assert np.isfinite(lesson05._keras_perplexity(targets, logits))


@pytest.mark.parametrize("exercise,answer,status", [
    ("05-perplexity", lambda: answers()["perplexity"], "passed"),
    ("05-build_vocabulary", lambda: MUTANTS["05-build_vocabulary"]["max_size ignored"], "failed"),
])
def test_randomised_checks_agree_over_many_seeds(exercise, answer, status):
    """A right answer passes and a wrong one fails on every draw, not just on the usual seeds."""
    for seed in range(40):
        result = checks.run(exercise, answer(), seed=seed)
        assert result.status == status, f"seed {seed}: {result.message}"

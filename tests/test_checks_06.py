"""Lesson 06's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import numpy as np
import pytest
import tensorflow as tf

from utils import checks
from utils.checks import lesson06

END = lesson06.END_ID


def decoder_with(sample=False, feed_start=False, keep_initial_states=False, never_stop=False, drop_end=False,
                 keep_start=False, stop_on_any=False):
    """A greedy decoder with one chosen mistake built in (the defaults make the right one)."""

    def greedy_decode(step, states, start_id, end_id, max_length):
        batch = states[0].shape[0]
        start = tf.fill([batch], tf.constant(start_id, tf.int32))
        tokens, done, written, initial = start, tf.zeros([batch], tf.bool), [], states
        for _ in range(max_length):
            logits, new_states = step(start if feed_start else tokens, initial if keep_initial_states else states)
            states = new_states
            if sample:
                tokens = tf.cast(tf.random.categorical(logits, 1, seed=1)[:, 0], tf.int32)
            else:
                tokens = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
            shown = tf.where(tokens == end_id, 0, tokens) if drop_end else tokens
            written.append(shown if never_stop else tf.where(done, 0, shown))
            done = done | (tokens == end_id)
            if bool(tf.reduce_any(done) if stop_on_any else tf.reduce_all(done)):
                break
        ids = tf.stack(written, axis=1)
        return tf.concat([start[:, None], ids], axis=1) if keep_start else ids

    return greedy_decode


def count_padding(y_true, y_pred):
    return tf.reduce_mean(tf.cast(tf.reduce_all(y_true == y_pred, axis=1), tf.float32))


def token_accuracy(y_true, y_pred):
    real = y_true != 0
    return tf.reduce_sum(tf.cast((y_true == y_pred) & real, tf.float32)) / tf.reduce_sum(tf.cast(real, tf.float32))


def per_row(y_true, y_pred):
    return tf.cast(tf.reduce_all((y_true == y_pred) | (y_true == 0), axis=1), tf.float32)


def share_wrong(y_true, y_pred):
    return 1.0 - tf.reduce_mean(per_row(y_true, y_pred))


def beam_with(one_beam=False, last_token_only=False, probabilities=False, extend_finished=False,
              drop_finished=False, keep_start=False):
    """A beam search with one chosen mistake built in (the defaults make the right one)."""

    def beam_search(step, states, start_id, end_id, max_length, beam_width):
        width = 1 if one_beam else beam_width
        hypotheses, finished = [([], 0.0, states)], []
        for _ in range(max_length):
            tokens = tf.constant([ids[-1] if ids else start_id for ids, _, _ in hypotheses], tf.int32)
            batched = [tf.concat([h[2][i] for h in hypotheses], axis=0) for i in range(len(states))]
            logits, new_states = step(tokens, batched)
            log_probs = tf.nn.log_softmax(logits, axis=-1).numpy()
            candidates = [] if drop_finished else list(finished)
            for row, (ids, score, _) in enumerate(hypotheses):
                row_states = [s[row:row + 1] for s in new_states]
                for token in np.argsort(-log_probs[row])[:width]:
                    gain = np.exp(log_probs[row, token]) if probabilities else log_probs[row, token]
                    total = float(gain) if last_token_only else score + float(gain)
                    candidates.append((ids + [int(token)], total, row_states))
            kept = sorted(candidates, key=lambda h: h[1], reverse=True)[:width]
            if extend_finished:
                finished, hypotheses = [], kept
            else:
                finished = [h for h in kept if h[0][-1] == end_id]
                hypotheses = [h for h in kept if h[0][-1] != end_id]
            if not hypotheses:
                break
        ids, score, _ = max(finished + hypotheses, key=lambda h: h[1])
        return tf.constant(([start_id] if keep_start else []) + ids, tf.int32), score

    return beam_search


MUTANTS = {
    "06-teacher_forcing": {
        "shifted the wrong way": lambda ids: (ids[:, 1:], ids[:, :-1]),
        "no shift": lambda ids: (ids, ids),
        "batch axis sliced": lambda ids: (ids[:-1], ids[1:]),
        "targets keep [start]": lambda ids: (ids[:, :-1], ids[:, :-1]),
        "targets lose [end]": lambda ids: (ids[:, :-1], tf.where(ids[:, 1:] == END, 0, ids[:, 1:])),
        "one sequence only": lambda ids: ids[:, 1:],
    },
    "06-greedy_decode": {
        "samples instead of argmax": decoder_with(sample=True),
        "feeds [start] every step": decoder_with(feed_start=True),
        "states not carried": decoder_with(keep_initial_states=True),
        "never stops at [end]": decoder_with(never_stop=True),
        "drops the [end] token": decoder_with(drop_end=True),
        "keeps the [start] token": decoder_with(keep_start=True),
        "stops when the first row ends": decoder_with(stop_on_any=True),
    },
    "06-beam_search": {
        "keeps only one beam": beam_with(one_beam=True),
        "ranks by the last token only": beam_with(last_token_only=True),
        "sums probabilities": beam_with(probabilities=True),
        "extends finished hypotheses": beam_with(extend_finished=True),
        "drops finished hypotheses": beam_with(drop_finished=True),
        "keeps the [start] token": beam_with(keep_start=True),
    },
    "06-exact_match": {
        "padding compared": count_padding,
        "per-token accuracy": token_accuracy,
        "one value per row": per_row,
        "share of wrong rows": share_wrong,
    },
}


def test_right_decoder_written_here_passes():
    """The mutant builder with no mistake is right, so each mutant differs by one mistake."""
    result = checks.run("06-greedy_decode", decoder_with(), seed=0)
    assert result.status == "passed", result.message
    result = checks.run("06-beam_search", beam_with(), seed=0)
    assert result.status == "passed", result.message


def test_utils_versions_pass():
    """The lesson continues with utils.dates' versions of the exercises: they must be right."""
    from utils import dates

    for exercise, answer in [("06-teacher_forcing", dates.teacher_forcing), ("06-greedy_decode", dates.greedy_decode),
                             ("06-exact_match", dates.exact_match)]:
        result = checks.run(exercise, answer, seed=0)
        assert result.status == "passed", f"{exercise}: {result.message}"


@pytest.mark.parametrize("exercise,mutant,words", [
    ("06-teacher_forcing", "shifted the wrong way", "wrong way"),
    ("06-teacher_forcing", "no shift", "Nothing was cut off"),
    ("06-teacher_forcing", "one sequence only", "pair"),
    ("06-greedy_decode", "never stops at [end]", "must be 0"),
    ("06-greedy_decode", "drops the [end] token", "Keep the [end] token"),
    ("06-greedy_decode", "keeps the [start] token", "Leave out the [start] token"),
    ("06-greedy_decode", "feeds [start] every step", "feed each step the token"),
    ("06-greedy_decode", "samples instead of argmax", "argmax"),
    ("06-beam_search", "keeps only one beam", "That is the greedy path"),
    ("06-beam_search", "drops finished hypotheses", "must stay among the candidates"),
    ("06-beam_search", "extends finished hypotheses", "[end]"),
    ("06-beam_search", "keeps the [start] token", "leave out the [start] token"),
    ("06-exact_match", "padding compared", "ignore positions where y_true is 0"),
    ("06-exact_match", "per-token accuracy", "per-token accuracy"),
    ("06-exact_match", "one value per row", "one number"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
    assert words in message, message

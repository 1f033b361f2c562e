"""Checks for lesson 06, the encoder-decoder.

Teacher forcing is compared with its definition on random batches of token ids with start
and end tokens and padding; greedy decoding is run on a tiny "model" whose most likely path
is known in advance (:func:`known_path_step`); exact match is compared with a brute-force
count on predictions that differ only in padding, only in real tokens, or not at all; beam
search is run on a tiny decoder with a random table of next-token probabilities
(:func:`table_step`) and compared with a brute-force search over every output it can write.

Conventions, so that the grader can call answers in another process: every argument and
result is a tensor, a NumPy array, a list, a tuple or a number, and the functions passed
to answers, :func:`known_path_step` and :func:`table_step`, are defined at module level here
(they are sent by name).
"""
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, call, expect_close, register, to_numpy

PAD_ID, START_ID, END_ID = 0, 1, 2
VOCAB = 10  # ids 3..9 are ordinary tokens


def _token_batch(rng: np.random.Generator, batch: int, time: int) -> np.ndarray:
    """``[batch, time]`` ids: [start] tokens… [end] then padding, rows of different lengths
    (the longest fills the row)."""
    ids = np.zeros((batch, time), np.int32)
    lengths = rng.integers(0, time - 1, size=batch)
    lengths[rng.integers(batch)] = time - 2
    for row, length in enumerate(lengths):
        ids[row, 0] = START_ID
        ids[row, 1:1 + length] = rng.integers(3, VOCAB, size=length)
        ids[row, 1 + length] = END_ID
    return ids


def _int_array(value, what: str) -> np.ndarray:
    array = to_numpy(value, what)
    if array.dtype.kind == "f" and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise CheckFailed(f"{what} returned {array.dtype} values; expected integer token ids.")
    return array


def _pair(result, what: str) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} should return a pair (decoder_inputs, decoder_targets); "
                          f"it returned a {type(result).__name__}.")
    return result


@register("06-teacher_forcing")
def check_teacher_forcing(teacher_forcing, rng: np.random.Generator) -> str:
    for batch, time in [(1, 2), (int(rng.integers(2, 6)), int(rng.integers(4, 9))), (7, 12)]:
        ids = _token_batch(rng, batch, time)
        what = f"teacher_forcing(ids of shape {ids.shape})"
        inputs, targets = _pair(call(teacher_forcing, tf.constant(ids), what=what), what)
        inputs = _int_array(inputs, what + "[0] (decoder_inputs)")
        targets = _int_array(targets, what + "[1] (decoder_targets)")
        expected_in, expected_out = ids[:, :-1], ids[:, 1:]
        if inputs.shape == expected_out.shape and np.array_equal(inputs, expected_out) and np.array_equal(
                targets, expected_in):
            raise CheckFailed(
                f"{what}: decoder_inputs start with the first real token and decoder_targets with "
                "[start]; the shift goes the wrong way. The decoder reads [start] first and must "
                "predict the token that follows: inputs drop the last token, targets the first."
            )
        for got, expected, name in [(inputs, expected_in, "decoder_inputs"), (targets, expected_out, "decoder_targets")]:
            if got.shape != expected.shape:
                hint = ""
                if got.shape == (batch - 1, time):
                    hint = " You sliced the batch axis; slice the time axis: ids[:, …]."
                elif got.shape == ids.shape:
                    hint = " Nothing was cut off: the two sequences are one token shorter than the input."
                raise CheckFailed(f"{what}: {name} has shape {got.shape}, expected {expected.shape}.{hint}")
        # An [end] token among the decoder inputs is never looked at (its target is padding):
        # accept it replaced by padding as well.
        inputs_ok = np.array_equal(inputs, expected_in) or np.array_equal(
            inputs, np.where(expected_in == END_ID, PAD_ID, expected_in))
        if not inputs_ok:
            row = int(np.argmax(np.any(inputs != expected_in, axis=1)))
            raise CheckFailed(f"{what}: decoder_inputs row {row} is {inputs[row].tolist()}, expected "
                              f"{expected_in[row].tolist()} (the row without its last token).")
        if not np.array_equal(targets, expected_out):
            row = int(np.argmax(np.any(targets != expected_out, axis=1)))
            raise CheckFailed(f"{what}: decoder_targets row {row} is {targets[row].tolist()}, expected "
                              f"{expected_out[row].tolist()} (the row without its first token, [start]).")
    return "decoder inputs drop the last token, targets drop [start], for batches of 1 to 7 and lengths 2 to 12."


# ---------------------------------------------------------------------------------------
# A tiny decoder whose greedy path is known: its state is [step, stop, offset], each [batch, 1].


def _known_next(tokens: np.ndarray, step: np.ndarray, stop: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The token the tiny decoder prefers after ``tokens`` at step ``step`` (1-based)."""
    ordinary = 3 + (tokens + offset + 2 * step) % (VOCAB - 3)
    return np.where(step >= stop, END_ID, ordinary)


def _known_logits(best: np.ndarray, step: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Logits with their maximum at ``best``, ahead of the rest by only 0.5, so sampling
    instead of taking the argmax soon strays from the path."""
    vocab = np.arange(VOCAB)[None, :]
    noise = 0.5 * (np.sin(1.7 * vocab + 2.3 * step[:, None] + offset[:, None]) + 1.0) / 2  # in [0, 0.5]
    noise[:, PAD_ID] -= 1.0  # padding is never the best guess
    return np.where(vocab == best[:, None], 1.0, noise)


def known_path_step(tokens, states):
    """One step of a tiny decoder, used by the check of ``06-greedy_decode``.

    ``tokens``: ``[batch]`` ids just written; ``states``: ``[step, stop, offset]``, each
    ``[batch, 1]`` float32. Returns ``(logits [batch, 10], new states)``. Its favourite next
    token depends on the token fed back, and it prefers [end] (id 2) once ``step`` reaches
    ``stop``.
    """
    step, stop, offset = (np.asarray(s, np.float64)[:, 0] for s in states)
    tokens = np.asarray(tokens).astype(np.int64).reshape(-1)
    step = step + 1
    best = _known_next(tokens, step.astype(np.int64), stop.astype(np.int64), offset.astype(np.int64))
    logits = _known_logits(best, step, offset)
    new_states = [tf.constant(step[:, None], tf.float32), tf.constant(stop[:, None], tf.float32),
                  tf.constant(offset[:, None], tf.float32)]
    return tf.constant(logits, tf.float32), new_states


def _known_path(stop: np.ndarray, offset: np.ndarray, max_length: int) -> np.ndarray:
    batch = len(stop)
    tokens = np.full(batch, START_ID)
    done = np.zeros(batch, bool)
    path = np.zeros((batch, max_length), np.int64)
    for step in range(1, max_length + 1):
        tokens = _known_next(tokens, np.full(batch, step), stop, offset)
        path[:, step - 1] = np.where(done, PAD_ID, tokens)
        done |= tokens == END_ID
    return path


@register("06-greedy_decode")
def check_greedy_decode(greedy_decode, rng: np.random.Generator) -> str:
    for batch, max_length in [(1, 1), (1, 6), (int(rng.integers(2, 5)), int(rng.integers(5, 9))), (6, 10)]:
        stop = rng.integers(1, max_length + 3, size=batch)  # some rows never reach [end]
        stop[0] = min(stop[0], max_length)
        offset = rng.integers(0, 7, size=batch)
        states = [tf.constant(np.zeros((batch, 1)), tf.float32), tf.constant(stop[:, None], tf.float32),
                  tf.constant(offset[:, None], tf.float32)]
        what = f"greedy_decode(step, states, start_id=1, end_id=2, max_length={max_length}) for a batch of {batch}"
        got = _int_array(call(greedy_decode, known_path_step, states, START_ID, END_ID, max_length, what=what), what)
        expected = _known_path(stop, offset, max_length)
        if got.ndim != 2 or got.shape[0] != batch or got.shape[1] > max_length:
            hint = ""
            if got.ndim == 2 and got.shape[1] == max_length + 1 and np.all(got[:, 0] == START_ID):
                hint = " Leave out the [start] token: return only the tokens the decoder wrote."
            elif got.ndim == 2 and got.shape[0] == max_length:
                hint = " Stack the steps along axis 1 (time), not axis 0."
            raise CheckFailed(f"{what} returned shape {got.shape}; expected [{batch}, at most {max_length}].{hint}")
        got = np.pad(got, [(0, 0), (0, max_length - got.shape[1])])  # stopping early is fine
        if np.array_equal(got, expected):
            continue
        row = int(np.argmax(np.any(got != expected, axis=1)))
        ends = np.flatnonzero(expected[row] == END_ID)
        message = f"{what}: row {row} is {got[row].tolist()}, the greedy path is {expected[row].tolist()}."
        real = expected[row] != PAD_ID
        if np.array_equal(got[row][real], expected[row][real]) and ends.size:
            message += (" Everything after the row's first [end] (id 2) must be 0: stop decoding a row "
                        "once it has written [end] (keep a `done` flag per row).")
        elif ends.size and got[row][ends[0]] == PAD_ID and np.array_equal(got[row][: ends[0]], expected[row][: ends[0]]):
            message += " Keep the [end] token itself in the output, then 0s."
        elif got[row][0] == expected[row][0]:
            message += (" The first token is right, later ones are not: feed each step the token chosen at "
                        "the previous step, and pass on the states the step returns.")
        else:
            message += " Take the argmax of the logits over the vocabulary (the last axis), don't sample."
        raise CheckFailed(message)
    return "follows the argmax path, feeds back tokens and states, stops each row at [end], for max_length 1 to 10."


@register("06-exact_match")
def check_exact_match(exact_match, rng: np.random.Generator) -> str:
    for batch, time in [(1, 3), (int(rng.integers(5, 12)), int(rng.integers(4, 9))), (40, 12)]:
        y_true = _token_batch(rng, batch, time)
        y_pred = y_true.copy()
        kind = rng.integers(0, 3, size=batch)
        kind[0] = 1 if batch > 1 else kind[0]
        for row in range(batch):
            real = np.flatnonzero(y_true[row] != PAD_ID)
            pad = np.flatnonzero(y_true[row] == PAD_ID)
            if kind[row] == 1:  # a wrong real token
                col = rng.choice(real)
                y_pred[row, col] = 3 + (y_pred[row, col] - 2) % (VOCAB - 3)
            elif kind[row] == 2 and pad.size:  # anything the model writes after the end does not count
                y_pred[row, pad] = rng.integers(3, VOCAB, size=pad.size)
        what = f"exact_match(y_true, y_pred) for a batch of {batch}"
        got = to_numpy(call(exact_match, tf.constant(y_true), tf.constant(y_pred), what=what), what).astype(np.float64)
        real = y_true != PAD_ID
        rows_right = np.all((y_true == y_pred) | ~real, axis=1)
        if got.shape != ():
            raise CheckFailed(f"{what} returned shape {got.shape}; expected one number (the mean over rows).")
        expect_close(
            got, np.mean(rows_right), what, rtol=1e-6, atol=1e-6, reference="the share of rows right",
            likely_causes={
                "padding is compared too: ignore positions where y_true is 0.": np.mean(np.all(y_true == y_pred, axis=1)),
                "that is per-token accuracy; a row counts only if every real token is right.":
                    np.sum((y_true == y_pred) & real) / np.sum(real),
                "that is the share of rows with a mistake; return the share without.": 1 - np.mean(rows_right),
            },
        )
    return "counts a row as right only when every non-padding token matches, ignores padding, for batches of 1 to 40."


# ---------------------------------------------------------------------------------------
# Beam search, judged against a brute-force search over every possible output of a tiny
# decoder whose next-token log-probabilities come from a random table.

BEAM_VOCAB, BEAM_LENGTH = 5, 4  # tokens 0..4 ([start] 0, [end] 1), outputs of up to 4 tokens
BEAM_START, BEAM_END = 0, 1
SEEDS = 2**24  # table seeds travel as float32 states: below 2**24 they stay exact


def _table_log_probs(seed: int) -> np.ndarray:
    """Log-probabilities ``[step, previous token, next token]`` of the tiny decoder."""
    logits = 1.5 * np.random.default_rng(seed).normal(size=(BEAM_LENGTH, BEAM_VOCAB, BEAM_VOCAB))
    logits[:, :, BEAM_START] = -30.0  # it (almost) never writes [start]
    return logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))


def table_step(tokens, states):
    """One step of a tiny decoder, used by the check of ``06-beam_search``.

    ``tokens``: ``[batch]`` ids just written; ``states``: ``[step, seed]``, each ``[batch, 1]``
    float32. Returns ``(logits [batch, 5], new states)``: the logits are log-probabilities
    read from a random table (drawn from ``seed``) at this step and previous token.
    """
    step, seed = (np.asarray(s, np.float64)[:, 0].astype(np.int64) for s in states)
    tokens = np.asarray(tokens).astype(np.int64).reshape(-1)
    logits = np.stack([_table_log_probs(int(s))[min(int(t), BEAM_LENGTH - 1), int(k)]
                       for s, t, k in zip(seed, step, tokens)])
    new_states = [tf.constant((step + 1)[:, None], tf.float32), tf.constant(seed[:, None], tf.float32)]
    return tf.constant(logits, tf.float32), new_states


def _all_outputs(log_probs: np.ndarray, max_length: int) -> list[tuple[float, list[int]]]:
    """Every output the decoder can write, with its log-probability: each sequence that ends
    with [end] within ``max_length`` tokens, and each of exactly ``max_length`` tokens with no
    [end]."""
    outputs = []

    def extend(prefix, score):
        previous = prefix[-1] if prefix else BEAM_START
        for token in range(BEAM_VOCAB):
            sequence, total = prefix + [token], score + float(log_probs[len(prefix), previous, token])
            if token == BEAM_END or len(sequence) == max_length:
                outputs.append((total, sequence))
            else:
                extend(sequence, total)

    extend([], 0.0)
    return outputs


def _greedy(log_probs: np.ndarray, max_length: int) -> list[int]:
    sequence = []
    while len(sequence) < max_length and (not sequence or sequence[-1] != BEAM_END):
        sequence.append(int(np.argmax(log_probs[len(sequence), sequence[-1] if sequence else BEAM_START])))
    return sequence


def _sequence_log_prob(log_probs: np.ndarray, sequence: list[int]) -> float:
    previous, total = BEAM_START, 0.0
    for position, token in enumerate(sequence):
        total += float(log_probs[position, previous, token])
        previous = token
    return total


def _trap_seed(rng: np.random.Generator, ends_early: bool) -> int:
    """A table seed whose best output differs from the greedy one (and, if ``ends_early``,
    ends with [end] before the length limit), so only a real beam search finds it."""
    while True:
        seed = int(rng.integers(SEEDS))
        log_probs = _table_log_probs(seed)
        outputs = _all_outputs(log_probs, BEAM_LENGTH)
        best, greedy = max(outputs)[1], _greedy(log_probs, BEAM_LENGTH)
        best_full_length = max(o for o in outputs if len(o[1]) == BEAM_LENGTH)[1]
        # where the best output ends early, the best one of full length must differ from the
        # greedy path too, so that the two mistakes give different answers
        if best != greedy and (len(best) < BEAM_LENGTH) == ends_early and not (ends_early and best_full_length == greedy):
            return seed


@register("06-beam_search")
def check_beam_search(beam_search, rng: np.random.Generator) -> str:
    cases = [(_trap_seed(rng, True), BEAM_VOCAB ** BEAM_LENGTH), (_trap_seed(rng, False), BEAM_VOCAB ** BEAM_LENGTH),
             (_trap_seed(rng, True), 1), (int(rng.integers(SEEDS)), BEAM_VOCAB ** BEAM_LENGTH)]
    for seed, width in cases:
        log_probs = _table_log_probs(seed)
        states = [tf.zeros([1, 1], tf.float32), tf.constant([[seed]], tf.float32)]
        what = (f"beam_search(step, states, start_id=0, end_id=1, max_length={BEAM_LENGTH}, beam_width={width}) "
                f"on a decoder with {BEAM_VOCAB} tokens")
        result = call(beam_search, table_step, states, BEAM_START, BEAM_END, BEAM_LENGTH, width, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"{what} should return a pair (token ids, log-probability); "
                              f"it returned a {type(result).__name__}.")
        ids = _int_array(result[0], what + "[0] (token ids)")
        score = float(to_numpy(result[1], what + "[1] (log-probability)"))
        if ids.ndim != 1:
            raise CheckFailed(f"{what}: the token ids have shape {ids.shape}; expected one row of ids [length] "
                              "(the single best output).")
        ids = ids.tolist()
        if ids and ids[0] == BEAM_START:
            raise CheckFailed(f"{what} returned {ids}: leave out the [start] token (id 0); return the tokens the "
                              "decoder wrote.")
        if BEAM_END in ids[:-1] or len(ids) > BEAM_LENGTH:
            raise CheckFailed(f"{what} returned {ids}, which goes on after [end] (id 1) or beyond max_length: "
                              "a hypothesis that has written [end] is finished; keep it, with its score, but "
                              "do not extend it.")
        greedy = _greedy(log_probs, BEAM_LENGTH)
        expected = greedy if width == 1 else max(_all_outputs(log_probs, BEAM_LENGTH))[1]
        reference = "the greedy path" if width == 1 else "the best of all possible outputs (brute force)"
        if ids != expected:
            message = f"{what} returned {ids}; {reference} is {expected}."
            if width > 1 and ids == greedy:
                message += (" That is the greedy path: keep the beam_width best hypotheses at every step, "
                            "not only the best one.")
            elif width > 1 and len(expected) < BEAM_LENGTH and len(ids) == BEAM_LENGTH:
                message += (" The best output ends early: a hypothesis that writes [end] is finished and must "
                            "stay among the candidates, competing with the longer ones.")
            elif width > 1:
                message += (" Rank hypotheses by the sum of the log-probabilities of all their tokens "
                            "(log-softmax of the logits), not by the last token's or by probabilities.")
            else:
                message += " With beam_width=1, beam search must be greedy decoding."
            raise CheckFailed(message)
        expect_close(np.array(score), np.array(_sequence_log_prob(log_probs, ids)), what + ": the log-probability",
                     rtol=1e-4, atol=1e-4, reference="the sum of the tokens' log-probabilities",
                     likely_causes={"that is a probability, not a log-probability.":
                                    np.exp(_sequence_log_prob(log_probs, ids))})
    return (f"finds the most likely output (as a brute-force search over all {BEAM_VOCAB}^{BEAM_LENGTH} outputs does), "
            "with its log-probability, ends hypotheses at [end], and is greedy at beam_width=1.")

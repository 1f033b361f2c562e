"""Data the course generates itself: small, seeded, and made in a blink.

Every generator takes a ``seed`` and returns NumPy arrays, so a lesson (and its checks)
can make the same data on any machine without downloading anything.
"""
import hashlib
import pathlib

import numpy as np


def two_spirals(n: int, noise: float = 0.15, turns: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane: no line separates them, two layers can.

    Returns ``x`` of shape ``[n, 2]`` (float32, roughly within [-3, 3]) and labels ``y`` of
    shape ``[n]`` (float32, 0 or 1, half of each).
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * turns * 2 * np.pi  # sqrt: even density along the arm
    radius = 2.5 * t / (turns * 2 * np.pi)
    angle = t + np.pi * labels  # the second arm is the first turned by 180°
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += rng.normal(scale=noise, size=x.shape)
    order = rng.permutation(n)
    return x[order].astype(np.float32), labels[order].astype(np.float32)


def recall_task(n: int, lag: int, vocab_size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """"What was the token ``lag`` steps ago?": a pure test of working memory.

    Each sequence holds ``lag + 1`` random tokens; the answer is the first one, seen ``lag``
    steps before the sequence ends, with ``lag`` distracting tokens after it. Guessing scores
    ``1 / vocab_size``. Returns token ids ``x`` of shape ``[n, lag + 1]`` and answers ``y`` of
    shape ``[n]`` (both int32).
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab_size, size=(n, lag + 1)).astype(np.int32)
    return x, x[:, 0].copy()


def most_frequent_token(x: np.ndarray, vocab_size: int) -> np.ndarray:
    """A count rule for the recall task: the token seen most often, ties to the one seen first.

    The answer is one of the sequence's tokens, so the most frequent one is right more often
    than chance (always at lag 1, about 0.2 at lag 80 with 8 tokens). The rule reads counts and,
    only to break a tie, which token came first, which favours the answer; a model has to beat
    it to show that it remembers the first token. Takes token ids ``[n, length]``; returns the
    predicted token for each sequence, ``[n]``.
    """
    length = x.shape[1]
    counts = np.stack([(x == token).sum(axis=1) for token in range(vocab_size)], axis=1)
    first_seen = np.stack([np.argmax(x == token, axis=1) for token in range(vocab_size)], axis=1)
    score = np.where(counts > 0, counts * (length + 1) - first_seen, -1)  # counts first, then earliness
    return np.argmax(score, axis=1)


def adding_problem(n: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber, 1997): add the two marked numbers.

    Each step carries a value drawn from U(0, 1) and a marker; exactly two steps are marked,
    one in each half of the sequence, so the first must be remembered for up to ``length``
    steps. Always answering 1 (the mean of the sum) gives a mean squared error of
    Var(u₁ + u₂) = 2/12 ≈ 0.167. Returns ``x`` of shape ``[n, length, 2]`` (value, marker)
    and targets ``y`` of shape ``[n]``, both float32.
    """
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length))
    markers = np.zeros((n, length))
    rows = np.arange(n)
    first = rng.integers(0, length // 2, size=n)
    second = rng.integers(length // 2, length, size=n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)
    return x, y


def periodic_streams(n: int, length: int, period: int, vocab_size: int = 16, seed: int = 0) -> np.ndarray:
    """Token streams that repeat a random pattern of ``period`` tokens: a dependency of fixed span.

    From position ``period`` on, every token equals the one ``period`` steps earlier, so a
    language model that can look back that far predicts it perfectly, and one that cannot
    (a Transformer whose segments are shorter than ``period``) can only guess, with accuracy
    ``1 / vocab_size``. Returns token ids of shape ``[n, length]`` (int32).
    """
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, vocab_size, size=(n, period))
    repeats = -(-length // period)  # ceiling division
    return np.tile(pattern, (1, repeats))[:, :length].astype(np.int32)


# ---------------------------------------------------------------------------------------
# Frozen data files in data/: generated once, checked every time they are read.


class DataFileError(RuntimeError):
    """A file in data/ is missing or is not the file the lessons were written for."""


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def read_data_file(path: pathlib.Path, expected_sha256: str, regenerate: str,
                   error: type[DataFileError] = DataFileError) -> str:
    """The text of a frozen data file, after making sure it is byte for byte the one the
    lessons were written for (their stated results depend on it); otherwise ``error`` says
    what is wrong and the command that makes the file again."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise error(f"{path} is missing. Regenerate it from the repository root with: {regenerate}")
    found = sha256(path)
    if found != expected_sha256:
        raise error(f"{path} has SHA-256 {found}, expected {expected_sha256}: the file was changed or "
                    f"damaged. Regenerate it from the repository root with: {regenerate}")
    return path.read_bytes().decode("utf-8")

"""The agreement corpus: reproducible, frozen with a checksum, and agreeing as promised."""
import shutil
import unicodedata

import pytest

from utils import tasks, text


def test_the_frozen_file_is_what_the_generator_makes():
    assert tasks.sha256(text.CORPUS_PATH) == text.CORPUS_SHA256, (
        f"data/agreement_corpus.txt differs from its stored checksum: run {text.REGENERATE}"
    )
    assert text.load_corpus() == text.generate_corpus()


def test_the_generator_is_seeded():
    assert text.generate_corpus(50, seed=3) == text.generate_corpus(50, seed=3)
    assert text.generate_corpus(50, seed=3) != text.generate_corpus(50, seed=4)


def test_a_missing_file_names_itself_and_the_command(tmp_path):
    missing = tmp_path / "agreement_corpus.txt"
    with pytest.raises(text.CorpusError) as error:
        text.load_corpus(missing)
    assert str(missing) in str(error.value) and "python -m utils.text" in str(error.value)


def test_a_changed_file_is_refused_with_the_command(tmp_path):
    copy = tmp_path / "agreement_corpus.txt"
    shutil.copyfile(text.CORPUS_PATH, copy)
    assert text.load_corpus(copy) == text.load_corpus()  # an intact copy loads
    with copy.open("a", encoding="utf-8") as file:
        file.write("The dog run.\n")
    with pytest.raises(text.CorpusError) as error:
        text.load_corpus(copy)
    message = str(error.value)
    assert str(copy) in message and text.CORPUS_SHA256 in message and "python -m utils.text" in message


def test_write_corpus_reproduces_the_frozen_bytes(tmp_path):
    digest = text.write_corpus(tmp_path / "corpus.txt")
    assert digest == text.CORPUS_SHA256
    assert (tmp_path / "corpus.txt").read_bytes() == text.CORPUS_PATH.read_bytes()


def test_the_corpus_is_untidy_on_purpose():
    lines = text.load_corpus()
    joined = "\n".join(lines)
    assert all(line[0].isupper() and line.endswith(".") for line in lines)
    assert "café" in unicodedata.normalize("NFC", joined)
    assert unicodedata.normalize("NFC", joined) != joined  # some accents are decomposed
    assert unicodedata.normalize("NFD", joined) != joined  # and some are composed


def _number_of(word: str) -> bool | None:
    """True for plural nouns and verbs, False for singular ones, None for other words."""
    for singular, plural in text.NOUNS + text.PLACES + text.INTRANSITIVE + text.TRANSITIVE:
        if word in (singular, plural):
            return word == plural
    return None


@pytest.mark.parametrize("fillers", [0, 1, 3, 6])
def test_probes_have_an_attractor_and_the_right_verb(fillers):
    probes = text.agreement_probes(200, fillers, seed=fillers)
    assert len(probes) == 200
    verbs = dict(text.INTRANSITIVE)
    for prefix, right, wrong in probes:
        words = unicodedata.normalize("NFC", prefix).lower().split()
        subject_plural = _number_of(words[1] if _number_of(words[1]) is not None else words[2])
        assert (right in verbs.values()) == subject_plural  # plural forms are the dict's values
        assert {right, wrong} in [set(pair) for pair in text.INTRANSITIVE]
        if fillers:
            assert _number_of(words[-1]) == (not subject_plural)  # the nearest noun disagrees
    plural_share = sum(right in verbs.values() for _, right, _ in probes) / len(probes)
    assert 0.35 < plural_share < 0.65


def test_tokenize_normalizes_folds_case_and_splits_punctuation():
    import tensorflow as tf

    tokens = text.tokenize(tf.constant([unicodedata.normalize("NFD", "The naïve dog, near the Café, runs."),
                                        "Straße ﬁne"]))
    assert tokens.to_list() == [
        [t.encode() for t in ["the", "naïve", "dog", ",", "near", "the", "café", ",", "runs", "."]],
        [b"strasse", b"fine"],
    ]


def test_tokenize_splits_punctuation_from_digits_and_keeps_each_mark_apart():
    import tensorflow as tf

    tokens = text.tokenize(tf.constant(["dogs, 42; run...", "x—y!?", ""]))
    assert tokens.to_list() == [
        [b"dogs", b",", b"42", b";", b"run", b".", b".", b"."],
        [b"x", "—".encode(), b"y", b"!", b"?"],
        [],
    ]

"""utils.pretraining: lesson 11's toy language keeps the promises its experiments rest on."""
import keras
import numpy as np
import pytest

from utils import pretraining as pt

N = 4000


def words_of(ids: np.ndarray) -> list[list[str]]:
    return [pt.decode(row).split() for row in ids]


def test_encode_pads_on_the_right_and_decode_inverts_it():
    sentences = [["the", "kind", "baker", "."], ["anna", "berg", "said", "that", "."]]
    ids = pt.encode(sentences)
    assert ids.shape == (2, pt.MAX_LENGTH) and ids.dtype == np.int32
    assert (ids[0, 4:] == pt.PAD_ID).all() and (ids[1, :5] != pt.PAD_ID).all()
    assert words_of(ids) == sentences


def test_corpus_is_repeatable_by_seed_and_fits_the_length():
    assert (pt.unlabelled_corpus(50, seed=3) == pt.unlabelled_corpus(50, seed=3)).all()
    assert (pt.unlabelled_corpus(50, seed=3) != pt.unlabelled_corpus(50, seed=4)).any()
    assert (pt.unlabelled_corpus(N)[:, -1] == pt.PAD_ID).all()  # room to spare


def test_an_adjective_keeps_company_with_verbs_of_its_kind():
    """The only thing pre-training can learn an adjective's meaning from."""
    agree = total = 0
    for words in words_of(pt.unlabelled_corpus(N, seed=1)):
        adjectives = [w for w in words if w in pt.PLEASANT + pt.UNPLEASANT]
        verbs = [w for w in words if w in pt.PLEASANT_VERBS + pt.UNPLEASANT_VERBS]
        if adjectives:
            total += 1
            agree += (adjectives[0] in pt.PLEASANT) == (verbs[0] in pt.PLEASANT_VERBS)
    assert total > N / 3
    assert abs(agree / total - pt.COOCCURRENCE) < 0.03


@pytest.mark.parametrize("labelled", [True, False])
def test_sentence_classes_come_from_the_adjective_of_the_split_only(labelled):
    ids, classes = pt.sentence_task(N, labelled, seed=2)
    allowed = {1: set(pt._split(pt.PLEASANT, labelled)), 2: set(pt._split(pt.UNPLEASANT, labelled))}
    for words, label in zip(words_of(ids), classes):
        adjectives = {w for w in words if w in pt.PLEASANT + pt.UNPLEASANT}
        assert adjectives == set() if label == 0 else adjectives <= allowed[label] and len(adjectives) == 1
    shares = np.bincount(classes, minlength=3) / N
    assert np.abs(shares - pt.CLASS_SHARES).max() < 0.03


def test_the_two_splits_share_no_adjective_name_or_place():
    for words in (pt.PLEASANT, pt.UNPLEASANT, pt.NAMES, pt.PLACES):
        train, test = set(pt._split(words, True)), set(pt._split(words, False))
        assert len(train) == pt.LABELLED_PER_KIND and not train & test and train | test == set(words)


@pytest.mark.parametrize("labelled", [True, False])
def test_tags_mark_names_surnames_and_places(labelled):
    ids, tags = pt.tagging_task(N, labelled, seed=5)
    expected = {**dict.fromkeys(pt._split(pt.NAMES, labelled), "B-PER"), **dict.fromkeys(pt.SURNAMES, "I-PER"),
                **dict.fromkeys(pt._split(pt.PLACES, labelled), "B-LOC")}
    for row, tag_row in zip(ids, tags):
        for word_id, tag in zip(row, tag_row):
            word = pt.VOCABULARY[word_id]
            assert pt.TAGS[tag] == expected.get(word, "O"), (pt.decode(row), word)
    assert {pt.TAGS[t] for t in np.unique(tags)} == set(pt.TAGS)


def test_restart_gives_fresh_weights_and_a_fresh_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    start = [w.copy() for w in model.get_weights()]
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=2, verbose=0)
    assert int(model.optimizer.iterations) > 0
    pt.restart(model, start)
    assert all((a == b).all() for a, b in zip(model.get_weights(), start))
    assert int(model.optimizer.iterations) == 0
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


def test_a_linear_probe_reads_what_is_linear_and_nothing_else():
    rng = np.random.default_rng(0)
    labels = rng.integers(3, size=600)
    features = rng.normal(size=(600, 8)) + 3.0 * np.eye(3, 8)[labels]
    predict = pt.linear_probe(features[:400], labels[:400], classes=3)
    assert (predict(features[400:]) == labels[400:]).mean() > 0.9
    noise = rng.normal(size=(600, 8))
    predict = pt.linear_probe(noise[:400], labels[:400], classes=3)
    assert (predict(noise[400:]) == labels[400:]).mean() < 0.5

"""The dates task: the generator, the frozen file and its loader, the token helpers."""
import datetime
import shutil

import numpy as np
import pytest

from utils import dates, tasks


def test_generator_is_seeded_and_answers_are_iso_dates():
    first, again = dates.generate_pairs(200, seed=3), dates.generate_pairs(200, seed=3)
    assert first == again
    assert first != dates.generate_pairs(200, seed=4)
    for _, target in first:
        day = datetime.date.fromisoformat(target)
        assert dates.FIRST_DAY <= day <= dates.LAST_DAY


def test_styles_write_the_same_day():
    day = datetime.date(2021, 3, 3)
    styles = dates._styles(day, np.random.default_rng(0))
    assert len(styles) == len(dates.STYLE_WEIGHTS["train"])
    assert "3/3/21" in styles
    assert "the 3rd of March, 2021" in styles
    assert any(s.startswith("Wednesday") for s in styles)  # 3 March 2021 was a Wednesday
    assert dates._ordinal_words(23) == "twenty-third" and dates._ordinal_words(30) == "thirtieth"
    assert dates._ordinal_digits(11) == "11th" and dates._ordinal_digits(22) == "22nd"
    assert dates._year_words(1987, np.random.default_rng(0)) == "nineteen eighty-seven"


def test_test_split_is_longer_on_average():
    lengths = {split: np.mean([len(t) for t in dates.load_split(split)[0]]) for split in ("train", "test")}
    assert lengths["test"] > lengths["train"] + 4


def test_frozen_file_matches_the_generator(tmp_path):
    """Regenerating writes exactly the frozen file (the checksum in utils.dates)."""
    assert dates.write_dates(tmp_path / "dates.tsv") == dates.DATES_SHA256
    assert tasks.sha256(dates.DATES_PATH) == dates.DATES_SHA256
    inputs, targets = dates.load_split("train")
    assert len(inputs) == len(targets) == dates.SPLIT_SIZES["train"]
    assert dates.DATES_PATH.stat().st_size < 1_000_000


def test_missing_or_damaged_file_says_how_to_regenerate(tmp_path):
    with pytest.raises(dates.DatesError, match="missing.*python -m utils.dates"):
        dates.load_split("train", path=tmp_path / "nowhere.tsv")
    damaged = tmp_path / "dates.tsv"
    shutil.copy(dates.DATES_PATH, damaged)
    with open(damaged, "a", encoding="utf-8") as file:
        file.write("train\tsomeday\t2000-01-01\n")
    with pytest.raises(dates.DatesError, match="changed or damaged.*python -m utils.dates"):
        dates.load_split("train", path=damaged)
    with pytest.raises(ValueError, match="unknown split"):
        dates.load_split("dev")


def test_tokens_round_trip():
    inputs, targets = ["Wed 3/3/21", "MARCH 3, 2021"], ["2021-03-03", "1999-12-31"]
    assert dates.characters(inputs).to_list()[1][:5] == [b"m", b"a", b"r", b"c", b"h"]  # case folded
    lookup = dates.input_lookup(inputs)
    ids = dates.encode_inputs(inputs, lookup).numpy()
    assert ids.shape == (2, 13) and ids[0, 10:].tolist() == [0, 0, 0]
    target_lookup = dates.target_lookup()
    target_ids = dates.encode_targets(targets, target_lookup)
    assert target_ids.shape == (2, dates.TARGET_LENGTH + 2)
    assert dates.decode_ids(target_ids, target_lookup) == targets


def test_length_batches_trim_padding_and_cover_the_data():
    inputs = np.zeros((100, 30), np.int32)
    lengths = np.arange(100) % 30 + 1
    for row, length in enumerate(lengths):
        inputs[row, :length] = 5
    targets = np.arange(100)[:, None]
    seen = []
    for x, y in dates.length_batches(inputs, targets, 10, seed=0):
        row_lengths = np.sum(x.numpy() != 0, axis=1)
        assert x.shape[1] == row_lengths.max()
        assert row_lengths.max() - row_lengths.min() <= 3  # similar lengths share a batch
        seen += y.numpy()[:, 0].tolist()
    assert sorted(seen) == list(range(100))


def test_metrics_ignore_padding():
    y_true = np.array([[5, 6, 3, 0], [5, 6, 7, 3]])
    y_pred = np.array([[5, 6, 3, 9], [5, 6, 8, 3]])
    assert dates.exact_match(y_true, y_pred) == 0.5
    assert dates.character_accuracy(y_true, y_pred) == pytest.approx(6 / 7)
    assert dates.length_buckets(["abc", "a" * 25, "a" * 70], [0, 20, 40, 60, 100]).tolist() == [0, 1, 3]


def test_date_lists_are_seeded_balanced_and_right():
    pairs = dates.generate_date_lists(300, max_dates=3, seed=1)
    assert pairs == dates.generate_date_lists(300, max_dates=3, seed=1)
    assert pairs != dates.generate_date_lists(300, max_dates=3, seed=2)
    counts = [len(target.split(dates.ISO_SEPARATOR)) for _, target in pairs]
    assert sorted(set(counts)) == [1, 2, 3] and counts.count(1) == counts.count(3) == 100
    for source, target in pairs:
        written, answers = source.split(dates.LIST_SEPARATOR), target.split(dates.ISO_SEPARATOR)
        assert len(written) == len(answers)
        for text, answer in zip(written, answers):
            day = datetime.date.fromisoformat(answer)
            assert text in dates._styles(day, np.random.default_rng(0))[:dates.NUMERIC_STYLES]


def test_list_targets_round_trip_with_padding():
    targets = ["2021-03-03", "2021-03-03 1999-12-31"]
    lookup = dates.list_target_lookup()
    ids = dates.encode_targets(targets, lookup).numpy()
    assert ids.shape == (2, 2 * dates.TARGET_LENGTH + 3) and ids[0, dates.TARGET_LENGTH + 2:].tolist() == [0] * 11
    assert dates.decode_ids(ids, lookup) == targets


def test_dates_right_counts_dates_in_their_place():
    targets = ["2021-03-03 1999-12-31 2000-01-01", "2021-03-03", "2021-03-03 1999-12-31"]
    guesses = ["2021-03-03 1999-12-30 2000-01-01", "2021-03-03 1999-12-31", "1999-12-31 2021-03-03"]
    assert dates.dates_right(targets, guesses) == pytest.approx([2 / 3, 1.0, 0.0])
    assert dates.dates_right(["2021-03-03 1999-12-31"], ["2021-03-03"]) == pytest.approx([0.5])

"""The SMS spam data: the book's counts, balanced labels, splits, padding and loaders."""

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def raw_df(data_dir):
    return pd.read_csv(data_dir / "SMSSpamCollection.tsv", sep="\t", header=None,
                       names=["Label", "Text"])


@pytest.fixture(scope="module")
def datasets(data_dir, ch06, tokenizer):
    train = ch06.SpamDataset(data_dir / "train.csv", tokenizer)
    others = [ch06.SpamDataset(data_dir / f"{name}.csv", tokenizer, max_length=train.max_length)
              for name in SPLITS[1:]]
    return [train, *others]


def test_collection_has_the_books_counts(raw_df):
    assert len(raw_df) == 5_572
    assert raw_df["Label"].value_counts().to_dict() == {"ham": 4_825, "spam": 747}


def test_balanced_dataset_keeps_every_spam_and_as_many_ham(raw_df, ch06):
    balanced = ch06.create_balanced_dataset(raw_df)
    # the book's frame: labels still "ham"/"spam" (the caller maps them, as in §6.2)
    assert balanced["Label"].value_counts().to_dict() == {"ham": 747, "spam": 747}
    spam_texts = sorted(raw_df.loc[raw_df["Label"] == "spam", "Text"])
    assert sorted(balanced.loc[balanced["Label"] == "spam", "Text"]) == spam_texts
    ham_texts = set(raw_df.loc[raw_df["Label"] == "ham", "Text"])
    assert set(balanced.loc[balanced["Label"] == "ham", "Text"]) <= ham_texts
    # seeded: the same sample every time
    again = ch06.create_balanced_dataset(raw_df)
    assert balanced.index.tolist() == again.index.tolist()


def test_unknown_label_is_reported(ch06):
    df = pd.DataFrame({"Label": ["ham", "spam", "maybe"], "Text": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="maybe"):
        ch06.create_balanced_dataset(df)


def test_books_label_mapping_line_runs_after_balancing(raw_df, ch06):
    """§6.2's listing: balance, then map the labels in the caller; no NaN appears."""
    balanced_df = ch06.create_balanced_dataset(raw_df)
    balanced_df["Label"] = balanced_df["Label"].map({"ham": 0, "spam": 1})
    assert balanced_df["Label"].value_counts().to_dict() == {0: 747, 1: 747}
    assert balanced_df["Label"].dtype.kind == "i"


def test_splits_have_the_books_sizes_and_lose_nothing(raw_df, ch06, data_dir):
    balanced = ch06.create_balanced_dataset(raw_df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train, validation, test = ch06.random_split(balanced, 0.7, 0.1)
    assert (len(train), len(validation), len(test)) == (1_045, 149, 300)

    def rows(df):
        return sorted(zip(df["Label"], df["Text"], strict=True))

    # every message in exactly one split: the union is the balanced set, no duplicates
    assert rows(pd.concat([train, validation, test])) == rows(balanced)
    # the CSV files hold the same splits, with labels 0 and 1 only
    for name, split in zip(SPLITS, (train, validation, test), strict=True):
        saved = pd.read_csv(data_dir / f"{name}.csv", keep_default_na=False)
        assert rows(saved) == rows(split)
        assert set(saved["Label"]) == {0, 1}


def test_padding_length_is_the_longest_training_message(datasets, tokenizer, data_dir):
    train, validation, test = datasets
    assert train.max_length == 120
    texts = pd.read_csv(data_dir / "train.csv", keep_default_na=False)["Text"]
    assert max(len(tokenizer.encode(text)) for text in texts) == 120
    assert validation.max_length == test.max_length == 120


def test_items_are_token_ids_padded_with_endoftext(datasets, tokenizer, data_dir):
    train = datasets[0]
    texts = pd.read_csv(data_dir / "train.csv", keep_default_na=False)
    for index in (0, 1, 500):
        ids, label = train[index]
        expected = tokenizer.encode(texts["Text"][index])
        assert ids.dtype == torch.long and ids.shape == (120,)
        assert ids[:len(expected)].tolist() == expected
        assert (ids[len(expected):] == 50256).all()
        assert label.item() == texts["Label"][index]


def test_loaders_have_the_books_batch_counts_and_shapes(datasets):
    train, validation, test = datasets
    torch.manual_seed(123)
    train_loader = DataLoader(train, batch_size=8, shuffle=True, drop_last=True)
    val_loader = DataLoader(validation, batch_size=8)
    test_loader = DataLoader(test, batch_size=8)
    assert (len(train_loader), len(val_loader), len(test_loader)) == (130, 19, 38)
    inputs, labels = next(iter(train_loader))
    assert inputs.shape == (8, 120) and labels.shape == (8,)
    assert set(labels.tolist()) <= {0, 1}


def test_csv_without_a_text_column_gives_a_clear_error(tmp_path, ch06, tokenizer):
    broken = tmp_path / "train.csv"
    broken.write_text("Label,Message\n0,hello\n1,win a prize\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) Text") as info:
        ch06.SpamDataset(broken, tokenizer)
    assert "\n" not in str(info.value)


def test_messages_that_look_like_missing_values_stay_text(tmp_path, ch06, tokenizer):
    path = tmp_path / "few.csv"
    path.write_text("Label,Text\n0,NA\n1,null\n")
    dataset = ch06.SpamDataset(path, tokenizer, max_length=4)
    assert dataset[0][0].tolist() == tokenizer.encode("NA") + [50256] * 3


def test_explicit_max_length_truncates_and_pads(tmp_path, ch06, tokenizer):
    path = tmp_path / "few.csv"
    path.write_text("Label,Text\n0,one two three four five six\n1,hi\n")
    dataset = ch06.SpamDataset(path, tokenizer, max_length=3)
    assert dataset[0][0].tolist() == tokenizer.encode("one two three four five six")[:3]
    assert dataset[1][0].tolist() == tokenizer.encode("hi") + [50256, 50256]

"""The IMDB folder: safe preparation from a synthetic archive, and the three classifiers."""

import csv
import os
import re
import tarfile

import pytest
import torch
from support.course_imports import import_course_module
from support.helpers import run_script, run_script_in_process
from support.synthetic_imdb import FILLER, NEGATIVE_WORDS, POSITIVE_WORDS

IMDB = "ch06/03_bonus_imdb-classification"
PREPARE = f"{IMDB}/download_prepare_dataset.py"
SCALED_SIZES = ["--train-size", "40", "--validation-size", "20", "--test-size", "40"]


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_prepares_balanced_disjoint_splits_from_the_mirror(imdb_mirror, imdb_prepare, tmp_path,
                                                            capsys):
    imdb_mirror(per_folder=30)
    data_dir = tmp_path / "data"
    imdb_prepare.run_from_command_line(["--data-dir", str(data_dir), *SCALED_SIZES])
    assert "Found 60 positive and 60 negative reviews" in capsys.readouterr().out
    splits = {name: read_rows(data_dir / f"{name}.csv") for name in ("train", "validation", "test")}
    assert {name: len(rows) for name, rows in splits.items()} == {
        "train": 40, "validation": 20, "test": 40}
    for rows in splits.values():
        assert sum(row["label"] == "1" for row in rows) == len(rows) // 2
        assert [row["label"] for row in rows] != sorted(row["label"] for row in rows)  # mixed
    texts = [row["text"] for rows in splits.values() for row in rows]
    assert len(set(texts)) == len(texts)  # no review in two splits
    # labels come from the folder: the synthetic positive reviews use positive words
    for row in splits["train"]:
        words = set(row["text"].lower().rstrip(".").split())
        assert bool(words & set(POSITIVE_WORDS)) == (row["label"] == "1")
        assert bool(words & set(NEGATIVE_WORDS)) == (row["label"] == "0")
    extracted = sorted(p.relative_to(data_dir).as_posix()
                       for p in (data_dir / "aclImdb").rglob("*") if p.is_file())
    assert len(extracted) == 120 and all(re.fullmatch(
        r"aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt", name) for name in extracted)
    assert not list(data_dir.glob(".*"))  # no temporary files or folders left

    # a second run with the same seed writes the same splits
    before = (data_dir / "train.csv").read_bytes()
    imdb_prepare.run_from_command_line(["--data-dir", str(data_dir), *SCALED_SIZES])
    assert (data_dir / "train.csv").read_bytes() == before


@pytest.mark.parametrize(("member", "kind", "linkname", "reason"), [
    ("aclImdb/train/pos/../../../evil.txt", tarfile.REGTYPE, "", "outside the target"),
    ("/tmp/evil.txt", tarfile.REGTYPE, "", "absolute path"),
    ("aclImdb/train/pos/99_9.txt", tarfile.SYMTYPE, "/etc/passwd", "is a link"),
], ids=["dot-dot", "absolute", "symlink"])
def test_an_escaping_member_stops_extraction_with_one_line(imdb_mirror, tmp_path, member, kind,
                                                           linkname, reason):
    imdb_mirror(per_folder=2, extra=[(member, b"pwned", kind, linkname)])
    result = run_script_in_process(PREPARE, ["--data-dir", "data", *SCALED_SIZES], cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "refusing" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("evil.txt"))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["aclImdb_v1.tar.gz"]


def test_a_corrupt_archive_gives_one_clear_line(imdb_mirror, tmp_path):
    archive = imdb_mirror(per_folder=2)
    archive.write_bytes(archive.read_bytes()[:200])  # truncated download
    result = run_script_in_process(PREPARE, ["--data-dir", "data", *SCALED_SIZES], cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a readable .tar.gz archive" in lines[0], result.stderr
    assert "delete it" in lines[0]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["aclImdb_v1.tar.gz"]


def test_too_few_reviews_for_the_requested_splits(imdb_mirror, tmp_path):
    imdb_mirror(per_folder=5)  # 10 reviews per label, the splits need 50
    result = run_script_in_process(PREPARE, ["--data-dir", "data", *SCALED_SIZES], cwd=tmp_path)
    assert result.returncode == 1
    assert "the requested splits need 50" in result.stderr


def test_logistic_regression_beats_chance_and_the_majority_class(imdb_data_dir, capsys):
    logreg = import_course_module(f"{IMDB}/train_sklearn_logreg.py")
    logreg.run_from_command_line(["--data-dir", str(imdb_data_dir), "--min-df", "1"])
    stdout = capsys.readouterr().out
    assert "40 train, 20 validation, 40 test texts" in stdout
    assert ("majority class: train accuracy 50.00%, validation accuracy 50.00%, "
            "test accuracy 50.00%") in stdout
    test_accuracy = float(re.search(
        r"^logistic regression \(tfidf\): .*test accuracy ([\d.]+)%$", stdout, re.M)[1])
    assert test_accuracy >= 90  # the words give the label away: chance is 50%


def test_logistic_regression_on_its_own_separable_set(imdb_data_dir):
    logreg = import_course_module(f"{IMDB}/train_sklearn_logreg.py")
    prepare = import_course_module(PREPARE)
    splits = {name: prepare.read_split(imdb_data_dir / f"{name}.csv")
              for name in prepare.SPLIT_NAMES}
    results, seconds = logreg.train_and_evaluate(splits, features="bow", ngram_max=1, min_df=1)
    assert results["logistic regression (bow)"]["test"] >= 0.9
    assert results["majority class"]["test"] == 0.5
    assert seconds >= 0


def test_train_gpt_runs_on_the_prepared_reviews(imdb_data_dir, tmp_path, capsys):
    train_gpt = import_course_module(f"{IMDB}/train_gpt.py")
    results = tmp_path / "results.csv"
    train_gpt.run_from_command_line([
        "--test-mode", "--weights", "random", "--eval-freq", "1", "--eval-iter", "1",
        "--max-examples", "8", "--batch-size", "4", "--trainable-token-pos", "flexible",
        "--data-dir", str(imdb_data_dir), "--results-csv", str(results), "--device", "cpu"])
    stdout = capsys.readouterr().out
    accuracies = [float(v) for v in re.findall(r"^(?:Training|Validation|Test) accuracy: "
                                               r"([\d.]+)%$", stdout, re.M)]
    assert len(accuracies) == 3 and all(0 <= a <= 100 for a in accuracies)
    (row,) = read_rows(results)
    assert (row["script"], row["num_epochs"], row["trainable_token_pos"]) == (
        "train_gpt.py", "1", "flexible")
    assert int(row["context_length"]) <= 256  # IMDB's default cut


def tiny_encoder(folder):
    """A random-weight DistilBERT with a WordPiece tokenizer, saved like a hub model."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (DistilBertConfig, DistilBertForSequenceClassification,
                              PreTrainedTokenizerFast)

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(
        specials + [*FILLER, *POSITIVE_WORDS, *NEGATIVE_WORDS, "."])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                            cls_token="[CLS]", sep_token="[SEP]",
                            mask_token="[MASK]").save_pretrained(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(vocab), dim=16, n_layers=2, n_heads=2,
                              hidden_dim=32, max_position_embeddings=64, num_labels=2)
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_train_bert_hf_finetunes_a_local_encoder_offline(imdb_data_dir, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = tiny_encoder(tmp_path / "tiny-distilbert")
    bert = import_course_module(f"{IMDB}/train_bert_hf.py")
    bert.run_from_command_line([
        "--model", str(encoder), "--trainable-layers", "last_block", "--max-examples", "8",
        "--batch-size", "4", "--num_epochs", "1", "--learning_rate", "1e-3", "--max-length",
        "32", "--data-dir", str(imdb_data_dir), "--device", "cpu"])
    stdout = capsys.readouterr().out
    assert "Ep 1 (Step 000000): Train loss" in stdout
    accuracies = [float(v) for v in re.findall(r"^(?:Training|Validation|Test) accuracy: "
                                               r"([\d.]+)%$", stdout, re.M)]
    assert len(accuracies) == 3 and all(0 <= a <= 100 for a in accuracies)

    # the head and the last of the two layers: what "last_block" leaves trainable
    _, model = bert.load_encoder(str(encoder))
    trainable = bert.set_trainable_layers(model, "last_block")
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("pre_classifier.", "classifier.",
                                       "distilbert.transformer.layer.1.")) for n in names)
    assert f"{trainable:,} trainable parameters" in stdout
    assert bert.set_trainable_layers(model, "last_layer") == sum(
        p.numel() for n, p in model.named_parameters() if "classifier" in n)


def test_train_bert_hf_without_the_model_says_how_to_work_offline(imdb_data_dir, tmp_path):
    """A reader's first offline run, in a fresh process: huggingface_hub reads HF_HUB_OFFLINE
    when it is imported, so inside this worker (transformers already imported) the setting
    would come too late and the script would wait for the network."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-cache"))
    result = run_script(f"{IMDB}/train_bert_hf.py", "--data-dir", imdb_data_dir, cwd=tmp_path,
                        env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "save_pretrained" in lines[-1], result.stderr


def test_train_bert_hf_spam_finetunes_a_local_encoder_on_the_sms_splits(
        sms_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = tiny_encoder(tmp_path / "tiny-distilbert")
    spam = import_course_module(f"{IMDB}/train_bert_hf_spam.py")
    settings = spam.parse_args(["--model", str(encoder), "--data_dir", str(sms_data_dir)])
    assert settings["learning_rate"] == 5e-6  # the book's default for the encoders
    spam.run_from_command_line([
        "--model", str(encoder), "--max-examples", "8", "--batch-size", "4", "--num-epochs",
        "1", "--learning-rate", "1e-3", "--max-length", "32", "--data-dir", str(sms_data_dir),
        "--device", "cpu"])
    stdout = capsys.readouterr().out
    assert "Ep 1 (Step 000000): Train loss" in stdout
    accuracies = [float(v) for v in re.findall(r"^(?:Training|Validation|Test) accuracy: "
                                               r"([\d.]+)%$", stdout, re.M)]
    assert len(accuracies) == 3 and all(0 <= a <= 100 for a in accuracies)
    # chapter 6's splits, labels mapped to 0/1 by the caller of create_balanced_dataset
    for name, size in (("train", 1_045), ("validation", 149), ("test", 300)):
        rows = read_rows(sms_data_dir / f"{name}.csv")
        assert len(rows) == size and {row["Label"] for row in rows} == {"0", "1"}

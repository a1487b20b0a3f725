"""prepare_dataset.py on a small Gutenberg-style folder, checked against tiktoken."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tiktoken
from support.course_imports import REPO_ROOT, import_course_module

FOLDER = REPO_ROOT / "ch05" / "03_bonus_pretraining_on_gutenberg"
SHARD_TOKENS = 300

HEADER = ("The Project Gutenberg eBook of {title}\r\n\r\nThis ebook is for the use of anyone "
          "anywhere.\r\n\r\nTitle: {title}\r\n\r\nLanguage: {language}\r\n\r\n"
          "*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\r\n")
FOOTER = ("\r\n*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\r\n\r\nUpdated editions "
          "will replace the previous one.\r\n")

# name -> cleaned text that must reach the tokenizer (kept books, in sorted name order)
KEPT = {
    "alice.txt": "Alice was beginning to get very tired of sitting by her sister on the "
                 "bank, and of having nothing to do.\n\n" * 12,
    "nested/moby.txt": "Call me Ishmael. Some years ago, never mind how long precisely, "
                       "having little or no money in my purse, I thought I would sail about "
                       "a little and see the watery part of the world. Caf\u00e9 \u201cquoted"
                       "\u201d\n" * 10,
    "plain_notes.txt": "A plain text file without any Project Gutenberg markers is kept "
                       "whole, and the words in it are English enough.\n" * 5,
}


def gutenberg_file(title, language, body):
    """A book as Project Gutenberg ships it: header, text, footer, CRLF line ends."""
    upper = title.upper()
    return (HEADER.format(title=title, language=language, upper=upper)
            + body.replace("\n", "\r\n") + FOOTER.format(upper=upper))


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gutenberg") / "raw"
    (folder / "nested").mkdir(parents=True)
    (folder / "alice.txt").write_bytes(
        gutenberg_file("Alice", "English", KEPT["alice.txt"]).encode())
    # a byte order mark in front of the header is allowed
    (folder / "nested" / "moby.txt").write_bytes(
        b"\xef\xbb\xbf" + gutenberg_file("Moby Dick", "English", KEPT["nested/moby.txt"]).encode())
    (folder / "plain_notes.txt").write_text(KEPT["plain_notes.txt"])
    (folder / "latin1.txt").write_bytes(
        gutenberg_file("Old", "English", "The caf\xe9 and the man.\n" * 20).encode("latin-1"))
    (folder / "french.txt").write_bytes(
        gutenberg_file("Le chat", "French", "Le chat dort sur la table.\n" * 20).encode())
    # no header: the language is told from the words
    (folder / "german.txt").write_text("Der Hund schl\u00e4ft im Garten, und die Katze "
                                       "sitzt auf dem Dach des Hauses.\n" * 20)
    (folder / "readme.md").write_text("not a .txt file: ignored")
    return folder


def reference_tokens():
    """tiktoken on the cleaned books joined with <|endoftext|>, the independent reference."""
    text = "<|endoftext|>".join(body.strip() for _, body in sorted(KEPT.items()))
    return tiktoken.get_encoding("gpt2").encode(text, allowed_special={"<|endoftext|>"})


def run_prepare(*args):
    return subprocess.run([sys.executable, str(FOLDER / "prepare_dataset.py"), *args],
                          capture_output=True, text=True, timeout=120)


def read_shards(folder):
    index = json.loads((folder / "index.json").read_text())
    arrays = [np.fromfile(folder / shard["file"], dtype="<u2") for shard in index["shards"]]
    return index, arrays


@pytest.fixture(scope="module")
def prepared(books, tmp_path_factory):
    """Two worker processes, flags in the book repository's underscore spelling."""
    output = tmp_path_factory.mktemp("shards")
    result = run_prepare("--data_dir", str(books), "--output_dir", str(output),
                         "--max_size_mb", str(SHARD_TOKENS * 2 / 1024**2), "--workers", "2")
    assert result.returncode == 0, result.stderr
    return output, result.stdout


def test_shards_hold_exactly_the_tokens_of_the_cleaned_books(prepared):
    output, _ = prepared
    index, arrays = read_shards(output)
    expected = reference_tokens()
    assert np.concatenate(arrays).tolist() == expected
    assert index["total_tokens"] == len(expected)
    assert [len(array) for array in arrays[:-1]] == [SHARD_TOKENS] * (len(arrays) - 1)
    assert 0 < len(arrays[-1]) <= SHARD_TOKENS
    assert [shard["tokens"] for shard in index["shards"]] == [len(a) for a in arrays]
    assert index["complete"] is True


def test_index_names_the_source_books_of_each_shard(prepared):
    index, arrays = read_shards(prepared[0])
    per_book = {}
    for shard, array in zip(index["shards"], arrays, strict=True):
        assert sum(count for _, count in shard["books"]) == len(array)
        for name, count in shard["books"]:
            per_book[name] = per_book.get(name, 0) + count
    encoding = tiktoken.get_encoding("gpt2")
    # every book after the first carries the <|endoftext|> that separates it
    expected = {name: len(encoding.encode(body.strip())) + (i > 0)
                for i, (name, body) in enumerate(sorted(KEPT.items()))}
    assert per_book == expected


def test_skipped_files_are_counted_with_their_reason(prepared):
    output, stdout = prepared
    index, _ = read_shards(output)
    skipped = {entry["book"]: entry["reason"] for entry in index["skipped"]}
    assert skipped == {"french.txt": "not English", "german.txt": "not English",
                       "latin1.txt": "not UTF-8"}
    assert "Skipped 3 files (2 not English, 1 not UTF-8)" in stdout


def test_rerun_keeps_complete_shards_and_finishes_the_rest(books, prepared, tmp_path):
    prepare = import_course_module("ch05/03_bonus_pretraining_on_gutenberg/prepare_dataset.py")
    output = tmp_path / "shards"
    output.mkdir()
    for path in prepared[0].iterdir():
        (output / path.name).write_bytes(path.read_bytes())
    complete = {path.name: path.read_bytes() for path in output.iterdir()}
    # as if the run had stopped while writing shard 2: later shards never appeared
    for path in output.glob("shard_*.bin"):
        if path.name >= "shard_00002.bin":
            path.unlink()
    kept_times = {path.name: path.stat().st_mtime_ns for path in output.glob("shard_*.bin")}

    index = prepare.tokenize_to_shards(books, output, SHARD_TOKENS, workers=1, progress=False)
    assert {path.name: path.read_bytes() for path in output.iterdir()} == complete
    assert {name: (output / name).stat().st_mtime_ns for name in kept_times} == kept_times
    assert index["complete"]

    # a run over complete shards writes nothing
    times = {path.name: path.stat().st_mtime_ns for path in output.iterdir()}
    prepare.tokenize_to_shards(books, output, SHARD_TOKENS, workers=1, progress=False)
    assert {path.name: path.stat().st_mtime_ns for path in output.iterdir()} == times


def test_shards_of_unknown_origin_are_left_alone(books, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "shard_00000.bin").write_bytes(b"mine")
    result = run_prepare("--data-dir", str(books), "--output-dir", str(foreign))
    assert result.returncode == 2 and "--output-dir" in result.stderr
    assert (foreign / "shard_00000.bin").read_bytes() == b"mine"

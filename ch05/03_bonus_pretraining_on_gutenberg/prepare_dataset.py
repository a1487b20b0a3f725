"""Tokenize a folder of Project Gutenberg books into flat uint16 token shards.

    python prepare_dataset.py --data-dir gutenberg/data/raw --output-dir gutenberg_preprocessed
    python prepare_dataset.py --data-dir my_books --max-size-mb 100 --workers 4

For every `.txt` file below --data-dir (in sorted order) it

1. skips the file if it is not UTF-8 text or not English (and says how many
   were skipped and why; the names are listed in the index),
2. cuts off Project Gutenberg's license header and footer (everything up to
   the "*** START OF THE PROJECT GUTENBERG EBOOK ... ***" line and from the
   "*** END OF ..." line on),
3. encodes the book with GPT-2's BPE (tiktoken), in parallel worker processes,

and writes one stream of token ids, books separated by `<|endoftext|>`
(id 50256), into shard files of at most --max-size-mb each: raw little-endian
uint16 arrays that `numpy.memmap` reads without loading them. `index.json`
lists the shards with their token counts and source books.

Every shard and the index are written with `atomic_write` (a temporary
file, renamed when complete), so an interrupted run (an error, Ctrl-C,
SIGTERM) leaves only whole shards behind; run the same command again and it
keeps the complete shards and continues after them. An index.json damaged
some other way is named in one line, and the books are tokenized again.
"""

import hashlib
import json
import os
import re
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import tiktoken
from downloads import atomic_write, cache_gpt2_tokenizer_files
from script_helpers import ScriptArgumentParser, positive_float, positive_int, writable_folder
from tqdm import tqdm

EOT_ID = 50256  # GPT-2's <|endoftext|>, the separator between books
TOKEN_DTYPE = np.dtype("<u2")  # GPT-2's 50,257 ids fit in 16 bits: 2 bytes a token
INDEX_NAME = "index.json"
MB = 1024 * 1024

START_MARKER = re.compile(
    r"^\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
END_MARKER = re.compile(
    r"^\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
LANGUAGE_LINE = re.compile(r"^Language:\s*(.+?)\s*$", re.M)

# The commonest English words make up about a third of any English prose and
# almost nothing of French, German or Finnish text: a cheap language test for
# books whose header does not name the language.
COMMON_ENGLISH_WORDS = frozenset(
    "the and of to a in that is was he it with for as his i you her on be had not at "
    "but by this which have from they she my all him were".split())
MIN_ENGLISH_SHARE = 0.15
WORD = re.compile(r"[a-z']+")


class DamagedIndex(ValueError):
    """index.json exists but cannot be read (cut short by a crash, edited, ...)."""


def strip_gutenberg_boilerplate(text):
    """The book's text without Project Gutenberg's license header and footer.

    Files without the markers (a folder of other plain-text books) are kept
    whole. Line endings become "\\n" and surrounding blank space is dropped.
    """
    text = text.replace("\r\n", "\n")
    start = START_MARKER.search(text)
    if start:
        text = text[start.end():]
    end = END_MARKER.search(text)
    if end:
        text = text[:end.start()]
    return text.strip()


def is_english(raw_text, body):
    """True when the header says English, or (without one) the words look English."""
    start = START_MARKER.search(raw_text)
    language = LANGUAGE_LINE.search(raw_text[:start.start()] if start else raw_text[:5000])
    if language:
        return "english" in language.group(1).lower()
    words = WORD.findall(body[:200_000].lower())
    if len(words) < 20:  # too short to tell: keep it
        return True
    common = sum(word in COMMON_ENGLISH_WORDS for word in words)
    return common / len(words) >= MIN_ENGLISH_SHARE


def read_clean_book(path):
    """(cleaned text, None), or (None, why the book is skipped)."""
    raw = Path(path).read_bytes()
    if b"\x00" in raw:
        return None, "not text (binary data)"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    body = strip_gutenberg_boilerplate(text)
    if not body:
        return None, "empty after removing the license text"
    if not is_english(text, body):
        return None, "not English"
    return body, None


_tokenizer = None


def _load_tokenizer():
    global _tokenizer
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    _tokenizer = tiktoken.get_encoding("gpt2")


def tokenize_book(task):
    """Worker: (file index, path) -> (file index, uint16 token ids or None, skip reason)."""
    file_index, path = task
    body, reason = read_clean_book(path)
    if body is None:
        return file_index, None, reason
    # A literal "<|endoftext|>" inside a book is plain text, not a separator.
    ids = _tokenizer.encode_ordinary(body)
    return file_index, np.asarray(ids, dtype=TOKEN_DTYPE), None


def list_books(data_dir):
    """All .txt files below `data_dir`, sorted, as paths relative to it."""
    return sorted(path.relative_to(data_dir).as_posix()
                  for path in Path(data_dir).rglob("*.txt") if path.is_file())


def inputs_fingerprint(data_dir, books, shard_tokens):
    """A hash of the file list, sizes, times and shard size: equal means same output."""
    digest = hashlib.sha256(f"{shard_tokens}\n".encode())
    for name in books:
        stat = (Path(data_dir) / name).stat()
        digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def shard_name(number):
    return f"shard_{number:05d}.bin"


class ShardWriter:
    """Cuts one stream of token ids into shard files and keeps index.json current.

    Tokens go straight to the open shard's temporary file, so memory holds at
    most one book, whatever the shard size. The index records, for each
    shard, where in the list of books its first token comes from, so a rerun
    can continue after the last complete shard.
    """

    def __init__(self, output_dir, books, shard_tokens, fingerprint):
        self.output_dir = Path(output_dir)
        self.books = books
        self.index = {
            "tokenizer": "gpt2", "dtype": "uint16 little-endian", "eot_id": EOT_ID,
            "shard_tokens": shard_tokens, "inputs": fingerprint, "complete": False,
            "total_tokens": 0, "shards": [], "skipped": [],
            "next": {"book": 0, "token": 0},
        }
        self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """An error or a signal mid-shard: the open shard's temporary file goes away."""
        if self.file is not None:
            self.file = None
            self.shard_writing.__exit__(*exc_info)

    @property
    def total_tokens(self):
        return self.index["total_tokens"]

    def resume_from(self, old_index):
        """Keep the old run's complete shards; return where to continue (book, token)."""
        kept = []
        for shard in old_index["shards"]:
            path = self.output_dir / shard["file"]
            if not path.is_file() or path.stat().st_size != shard["tokens"] * TOKEN_DTYPE.itemsize:
                break
            kept.append(shard)
        if len(kept) == len(old_index["shards"]):
            position = old_index["next"]
        else:
            position = old_index["shards"][len(kept)]["start"]
        self.index["shards"] = kept
        self.index["total_tokens"] = sum(shard["tokens"] for shard in kept)
        done = set(self.books[:position["book"]])
        self.index["skipped"] = [entry for entry in old_index["skipped"]
                                 if entry["book"] in done]
        self.index["complete"] = old_index["complete"] and len(kept) == len(old_index["shards"])
        self.index["next"] = dict(position)
        return position["book"], position["token"]

    def skip(self, book_number, reason):
        self.index["skipped"].append({"book": self.books[book_number], "reason": reason})
        self.index["next"] = {"book": book_number + 1, "token": 0}

    def add_book(self, book_number, tokens, first_token=0):
        """Append a book's ids (from `first_token` on, after a resume) to the stream.

        Position 0 of a book's part of the stream is the <|endoftext|> that
        separates it from the previous book (the first book has none).
        """
        if self.total_tokens - first_token > 0:
            tokens = np.concatenate([np.array([EOT_ID], dtype=TOKEN_DTYPE), tokens])
        position = first_token
        tokens = tokens[first_token:]
        while len(tokens):
            if self.file is None:
                self._open_shard(book_number, position)
            room = self.index["shard_tokens"] - self.current["tokens"]
            part, tokens = tokens[:room], tokens[room:]
            part.tofile(self.file)
            self.current["tokens"] += len(part)
            self.index["total_tokens"] += len(part)
            books_in_shard = self.current["books"]
            if not books_in_shard or books_in_shard[-1][0] != self.books[book_number]:
                books_in_shard.append([self.books[book_number], 0])
            books_in_shard[-1][1] += len(part)
            position += len(part)
            self.index["next"] = ({"book": book_number + 1, "token": 0} if not len(tokens)
                                  else {"book": book_number, "token": position})
            if self.current["tokens"] == self.index["shard_tokens"]:
                self._close_shard()

    def finish(self):
        if self.file is not None:
            self._close_shard()
        self.index["complete"] = True
        self.write_index()

    def write_index(self):
        with atomic_write(self.output_dir / INDEX_NAME) as file:
            json.dump(self.index, file, indent=1)

    def _open_shard(self, book_number, token):
        number = len(self.index["shards"])
        self.current = {"file": shard_name(number), "tokens": 0, "books": [],
                        "start": {"book": book_number, "token": token}}
        self.shard_writing = atomic_write(self.output_dir / self.current["file"], "wb")
        self.file = self.shard_writing.__enter__()

    def _close_shard(self):
        self.file = None
        self.shard_writing.__exit__(None, None, None)  # fsync and rename into place
        self.index["shards"].append(self.current)
        self.write_index()


def remove_stale_shards(output_dir, index):
    """Delete shard files of an earlier, different run that the new index does not list."""
    listed = {shard["file"] for shard in index["shards"]}
    for path in Path(output_dir).glob("shard_*.bin"):
        if path.name not in listed:
            path.unlink()


def tokenize_to_shards(data_dir, output_dir, shard_tokens, workers=1, progress=True):
    """Tokenize every book below `data_dir` into shards in `output_dir`; return the index."""
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    books = list_books(data_dir)
    writer = ShardWriter(output_dir, books, shard_tokens,
                         inputs_fingerprint(data_dir, books, shard_tokens))

    start_book, start_token = 0, 0
    try:
        old_index = read_index(output_dir)
    except DamagedIndex as err:
        print(f"{err}: tokenizing every book again.")
        old_index = None
    if old_index is not None and old_index.get("inputs") == writer.index["inputs"]:
        start_book, start_token = writer.resume_from(old_index)
        if writer.index["complete"]:
            print(f"All {len(writer.index['shards'])} shards in {output_dir} are complete "
                  "already (same books, same shard size): nothing to do.")
            return writer.index
        if writer.index["shards"]:
            print(f"Keeping {len(writer.index['shards'])} complete shards from an earlier "
                  f"run; continuing with book {start_book + 1} of {len(books)}.")
    elif old_index is not None:
        print("The books or --max-size-mb changed since index.json was written: "
              "writing all shards again.")
    remove_stale_shards(output_dir, writer.index)

    tasks = [(number, data_dir / books[number]) for number in range(start_book, len(books))]
    with writer, tqdm(total=len(books), initial=start_book, unit="book",
                      disable=not progress, desc="Tokenizing") as bar:
        for number, tokens, reason in _tokenized_books(tasks, workers):
            if tokens is None:
                writer.skip(number, reason)
            else:
                writer.add_book(number, tokens, start_token if number == start_book else 0)
            bar.update()
        writer.finish()
    return writer.index


def _tokenized_books(tasks, workers):
    """(file index, ids, reason) in the order of `tasks`, from `workers` processes."""
    if workers == 1:
        _load_tokenizer()
        yield from map(tokenize_book, tasks)
        return
    with Pool(workers, initializer=_load_tokenizer) as pool:
        # imap keeps the books' order; chunks of a few books cut the messaging overhead
        yield from pool.imap(tokenize_book, tasks, chunksize=4)


def read_index(output_dir):
    """The parsed index.json of a shard folder, or None if there is none.

    Raises DamagedIndex (naming the file) when it is not the JSON object this
    script writes, e.g. cut short by a crash of an older version.
    """
    path = Path(output_dir) / INDEX_NAME
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        index = None
    if not isinstance(index, dict) or not {"shards", "complete", "total_tokens"} <= set(index):
        raise DamagedIndex(f"{path} is damaged (cut short or not from prepare_dataset.py)")
    return index


def print_shard_summary(index, seconds, input_bytes):
    skipped = {}
    for entry in index["skipped"]:
        skipped[entry["reason"]] = skipped.get(entry["reason"], 0) + 1
    print(f"{index['total_tokens']:,} tokens in {len(index['shards'])} shards "
          f"({seconds:.1f} s, {input_bytes / MB / seconds:.2f} MB of text/s).")
    if skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
        print(f"Skipped {len(index['skipped'])} files ({reasons}); "
              f"their names are listed in {INDEX_NAME}.")


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it.

    The dict holds data_dir, output_dir, max_size_mb and workers, plus
    shard_tokens (the tokens one shard of --max-size-mb holds).
    """
    parser = ScriptArgumentParser(
        description="Tokenize a folder of Project Gutenberg .txt books into uint16 shards.",
    )
    parser.add_argument("--data-dir", default="gutenberg/data/raw",
                        help="folder with the books' .txt files (searched recursively)")
    parser.add_argument("--output-dir", type=writable_folder, default="gutenberg_preprocessed",
                        help="where the shards and index.json are written")
    parser.add_argument("--max-size-mb", type=positive_float, default=500,
                        help="size of each shard in MB (2 bytes a token)")
    parser.add_argument("--workers", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="processes that tokenize books in parallel")
    settings = vars(parser.parse_args(argv))

    data_dir = Path(settings["data_dir"])
    if not data_dir.is_dir():
        parser.error(f"argument --data-dir: {data_dir} is not a folder")
    if not list_books(data_dir):
        parser.error(f"argument --data-dir: no .txt files below {data_dir}")
    if settings["max_size_mb"] * MB < TOKEN_DTYPE.itemsize:
        parser.error("argument --max-size-mb: must hold at least one token (2 bytes)")
    output_dir = settings["output_dir"]
    if any(output_dir.glob("shard_*.bin")) and not (output_dir / INDEX_NAME).is_file():
        parser.error(f"argument --output-dir: {output_dir} holds shard files but no "
                     f"{INDEX_NAME}; they are not from this script, choose another folder")
    settings["shard_tokens"] = int(settings["max_size_mb"] * MB) // TOKEN_DTYPE.itemsize
    return settings


def main(settings):
    """Tokenize the books into shards as `settings` (parse_args's dict) says."""
    data_dir, shard_tokens = settings["data_dir"], settings["shard_tokens"]
    workers = settings["workers"]
    books = list_books(data_dir)
    input_bytes = sum((Path(data_dir) / name).stat().st_size for name in books)
    print(f"{len(books)} .txt files ({input_bytes / MB:.1f} MB) in {data_dir}; "
          f"shards of up to {shard_tokens:,} tokens; {workers} worker processes.")
    start = time.perf_counter()
    index = tokenize_to_shards(data_dir, settings["output_dir"], shard_tokens, workers)
    print_shard_summary(index, time.perf_counter() - start, input_bytes)


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()

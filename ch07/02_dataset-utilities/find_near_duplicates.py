"""Find near-duplicate entries in an instruction dataset (and optionally drop them).

    python find_near_duplicates.py --json-file instruction-data.json
    python find_near_duplicates.py --json-file instruction-data.json --threshold 0.8 \\
        --key instruction
    python find_near_duplicates.py --json-file instruction-data.json \\
        --remove-duplicates --output instruction-data-deduplicated.json

Two entries that ask almost the same thing ("Convert 45 kilometers to meters." and
"Convert 25 kilometers to meters.") add little to finetuning, and when one lands in
the training split and the other in the test split the test score is flattering.
Each text field of the entries (or only the one --key names) is searched on its
own, as the book's script does: each entry's text becomes a TF-IDF vector (word
counts weighted by how rare each word is across the dataset, so shared filler
words count for little); two entries are near-duplicates when the cosine
similarity of their vectors is at least --threshold. The script prints every such
pair with its score.

With --remove-duplicates it also writes the dataset without them: near-duplicate
pairs (found in any of the fields searched) link entries into groups, and of each
group only the first entry (in file order) is kept. The input file is never
changed and an existing --output is never overwritten.

The book's repository calls this script find-near-duplicates.py; its flag
spellings (--json_file, --remove_duplicates, --json_output_file) work here too.
"""

import argparse
import json
import sys
from pathlib import Path

from llm_client import write_json_atomically
from script_helpers import ScriptArgumentParser, existing_file, writable_file

# Rows of the similarity matrix computed at once: memory stays at
# CHUNK_ROWS x entries numbers, so the 52k-entry Alpaca set fits in a laptop.
CHUNK_ROWS = 512
# Cosine similarities are sums of floating-point products: identical texts can
# score 0.9999999. Scores this close below the threshold still count.
ROUNDING_TOLERANCE = 1e-9


def find_near_duplicates(texts, threshold=0.9):
    """All pairs (i, j, score) with i < j whose TF-IDF cosine similarity >= threshold.

    Empty texts are skipped: they have no words to compare (an empty "input" is
    the normal case, not a duplicate).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    indices = [i for i, text in enumerate(texts) if text.strip()]
    if len(indices) < 2:
        return []
    try:
        vectors = TfidfVectorizer().fit_transform([texts[i] for i in indices])
    except ValueError:  # not one word of two or more letters in any text
        return []
    pairs = []
    for start in range(0, len(indices), CHUNK_ROWS):
        scores = cosine_similarity(vectors[start:start + CHUNK_ROWS], vectors)
        rows, columns = (scores >= threshold - ROUNDING_TOLERANCE).nonzero()
        for row, column in zip(rows, columns, strict=True):
            a, b = start + row, column
            if a < b:
                pairs.append((indices[a], indices[b], min(float(scores[row, column]), 1.0)))
    return sorted(pairs)


def entries_to_remove(pairs, n_entries):
    """The indices to drop so that each group of linked near-duplicates keeps its first.

    Pairs link entries into groups (A~B and B~C put A, B and C together even if
    A and C differ more): a union-find over the pairs, keeping the smallest index.
    """
    parent = list(range(n_entries))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        first, second = sorted((root(i), root(j)))
        parent[second] = first
    return sorted(i for i in range(n_entries) if root(i) != i)


def threshold_value(text):
    """A similarity threshold: a number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it.

    Besides one key per flag, "entries" holds the dataset read from --json-file
    and "keys" the fields to search.
    """
    parser = ScriptArgumentParser(
        description="Find near-duplicate entries (TF-IDF cosine similarity) in an "
                    "instruction dataset, and optionally write it without them.",
        aliases={"--json_output_file": "--output"},
    )
    parser.add_argument("--json-file", type=existing_file, required=True,
                        help="the dataset: a JSON list of entries (objects)")
    parser.add_argument("--threshold", type=threshold_value, default=0.9,
                        help="pairs at least this similar (cosine, 0-1) are near-duplicates")
    parser.add_argument("--key", default=None,
                        help="the one field of each entry to compare (default: every "
                             "field that holds text in all entries, one after another)")
    parser.add_argument("--remove-duplicates", action="store_true",
                        help="write the dataset without the near-duplicates to --output")
    parser.add_argument("--output", type=writable_file, default=None,
                        help="where --remove-duplicates writes (a new file)")
    settings = vars(parser.parse_args(argv))
    output, key = settings["output"], settings["key"]
    if settings["remove_duplicates"] and output is None:
        parser.error("argument --output: --remove-duplicates needs a file to write to")
    if output is not None and not settings["remove_duplicates"]:
        parser.error("argument --output: only used with --remove-duplicates")
    if output is not None and output.exists():
        parser.error(f"argument --output: {output} exists; choose a new file name")
    settings["entries"] = read_dataset(parser, settings["json_file"], key)
    settings["keys"] = [key] if key is not None else text_fields(settings["entries"])
    if not settings["keys"]:
        parser.error(f"argument --json-file: no field holds text in every entry of "
                     f"{settings['json_file']}")
    return settings


def read_dataset(parser, path, key):
    """The dataset's entries; exits with one line if it is not a list of entries with `key`."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        parser.error(f"argument --json-file: cannot read JSON from {path} "
                     f"({type(err).__name__})")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(entry, dict) and (key is None or isinstance(entry.get(key), str))
            for entry in entries):
        with_key = f", each with a text under {key!r} (see --key)" if key is not None else ""
        parser.error(f"argument --json-file: {path} must be a non-empty JSON list of "
                     f"objects{with_key}")
    return entries


def text_fields(entries):
    """The fields that hold a string in every entry, in the first entry's order."""
    return [key for key in entries[0]
            if all(isinstance(entry.get(key), str) for entry in entries)]


def report_field(entries, key, threshold):
    """Print the near-duplicate pairs of one field; return them."""
    texts = [entry[key] for entry in entries]
    pairs = find_near_duplicates(texts, threshold)
    for i, j, score in pairs:
        print(f"{score:.4f}  #{i}: {texts[i]!r}")
        print(f"{'':8}#{j}: {texts[j]!r}")
    print(f"{len(pairs)} near-duplicate pairs (similarity >= {threshold}) in the "
          f"{key!r} field of {len(texts)} entries")
    return pairs


def main(settings):
    """Report (and, with remove_duplicates, drop) near-duplicates as `settings` says."""
    entries, keys = settings["entries"], settings["keys"]
    pairs = []
    for key in keys:
        if len(keys) > 1:
            print(f"\n== Field {key!r} ==")
        pairs += report_field(entries, key, settings["threshold"])
    if settings["remove_duplicates"]:
        removed = set(entries_to_remove(pairs, len(entries)))
        kept = [entry for i, entry in enumerate(entries) if i not in removed]
        write_json_atomically(settings["output"], kept)
        print(f"Removed {len(removed)} entries; wrote {len(kept)} to {settings['output']}")
    return 0


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_from_command_line())

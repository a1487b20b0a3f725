"""find_near_duplicates.py on a small dataset whose near-duplicate pairs are known.

The scores are checked against TF-IDF and cosine similarity written out in plain
Python (scikit-learn's defaults: lowercase words of two or more letters or digits,
raw counts, smoothed idf = ln((1 + n) / (1 + df)) + 1, vectors scaled to length 1).
"""

import json
import math
import re
from collections import Counter
from itertools import combinations

import pytest
from support.course_imports import import_course_module
from support.helpers import run_script_in_process

SCRIPT = "ch07/02_dataset-utilities/find_near_duplicates.py"

INSTRUCTIONS = [
    "Convert 45 kilometers to meters.",         # 0 ~ 2
    "What is the capital of France?",           # 1 ~ 4
    "Convert 25 kilometers to meters.",         # 2
    "Name a primary color.",                    # 3
    "What is the capital city of France?",      # 4
    "Write a haiku about the sea.",             # 5
    "Name the capital of Italy.",               # 6: shares words with 1 and 4, less so
    "Summarize the plot of Hamlet.",            # 7
    "",                                         # 8: empty, never a duplicate
    "",                                         # 9
]
KNOWN_PAIRS = {(0, 2), (1, 4)}


def reference_scores(texts):
    """{(i, j): cosine similarity of TF-IDF vectors} for the non-empty texts."""
    words = {i: Counter(re.findall(r"\b\w\w+\b", text.lower()))
             for i, text in enumerate(texts) if text}
    n = len(words)
    df = Counter(word for counts in words.values() for word in counts)
    vectors = {}
    for i, counts in words.items():
        weights = {w: c * (math.log((1 + n) / (1 + df[w])) + 1) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in weights.values()))
        vectors[i] = {w: v / norm for w, v in weights.items()}
    return {(i, j): sum(v * vectors[j].get(w, 0.0) for w, v in vectors[i].items())
            for i, j in combinations(sorted(vectors), 2)}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "data.json"
    entries = [{"instruction": text, "input": "", "output": f"answer {i}"}
               for i, text in enumerate(INSTRUCTIONS)]
    path.write_text(json.dumps(entries))
    return path, entries


def test_known_pairs_found_exactly_at_their_threshold():
    tool = import_course_module(SCRIPT)
    scores = reference_scores(INSTRUCTIONS)
    threshold = min(scores[pair] for pair in KNOWN_PAIRS)
    others = max(score for pair, score in scores.items() if pair not in KNOWN_PAIRS)
    assert others < threshold - 0.05  # the data separates the known pairs clearly
    found = tool.find_near_duplicates(INSTRUCTIONS, threshold)
    assert {(i, j) for i, j, _ in found} == KNOWN_PAIRS
    for i, j, score in found:
        assert score == pytest.approx(scores[i, j], abs=1e-9)
    # just above the weaker pair's score, only the stronger pair remains
    stronger = {(i, j) for i, j, _ in tool.find_near_duplicates(INSTRUCTIONS, threshold + 1e-6)}
    assert len(stronger) == 1 and stronger < KNOWN_PAIRS
    # identical texts count at threshold 1.0 despite rounding
    assert [(i, j) for i, j, _ in tool.find_near_duplicates(["a b c", "x y", "A B C."], 1.0)] \
        == []  # one-letter words are not words for TF-IDF: no vectors to compare
    assert [(i, j) for i, j, _ in tool.find_near_duplicates(
        ["red green blue", "one two", "Red, green, blue!"], 1.0)] == [(0, 2)]


def test_groups_keep_their_first_entry():
    tool = import_course_module(SCRIPT)
    # 1~3 and 3~5 link 1, 3 and 5 into one group; 0~2 is another; 4 stands alone
    pairs = [(0, 2, 0.95), (1, 3, 0.91), (3, 5, 0.92)]
    assert tool.entries_to_remove(pairs, 6) == [2, 3, 5]
    assert tool.entries_to_remove([(3, 5, 0.9), (1, 5, 0.9)], 6) == [3, 5]


def test_script_prints_pairs_and_writes_the_cleaned_file(dataset, tmp_path):
    path, entries = dataset
    scores = reference_scores(INSTRUCTIONS)
    threshold = round(min(scores[pair] for pair in KNOWN_PAIRS) - 0.001, 3)
    output = tmp_path / "deduplicated.json"
    before = path.read_bytes()
    result = run_script_in_process(SCRIPT, [
        "--json_file", str(path), "--key", "instruction", "--threshold", str(threshold),
        "--remove_duplicates", "--json_output_file", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for i, j in sorted(KNOWN_PAIRS):
        assert f"{scores[i, j]:.4f}  #{i}: {INSTRUCTIONS[i]!r}" in out
        assert f"#{j}: {INSTRUCTIONS[j]!r}" in out
    assert f"2 near-duplicate pairs (similarity >= {threshold})" in out
    assert "Removed 2 entries; wrote 8" in out
    kept = json.loads(output.read_text())
    assert kept == [entry for i, entry in enumerate(entries) if i not in (2, 4)]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "deduplicated.json"]


def test_existing_output_is_never_overwritten(dataset, tmp_path):
    path, _ = dataset
    output = tmp_path / "mine.json"
    output.write_text("keep me")
    result = run_script_in_process(SCRIPT, ["--json-file", str(path), "--remove-duplicates",
                                            "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 2 and "--output" in result.stderr
    assert output.read_text() == "keep me"


def test_without_key_every_text_field_is_searched(tmp_path):
    """As the book's script: each field holding text in all entries, one after another.

    Pairs from any field link entries for removal; `--key` limits the search to one.
    """
    entries = [
        {"instruction": "Convert 45 kilometers to meters.", "input": "", "output": "45000 m.",
         "id": 1},
        {"instruction": "Name a primary color.", "input": "", "output": "Red is the first one.",
         "id": 2},
        {"instruction": "Give one primary colour.", "input": "",
         "output": "Red is the first one!", "id": 3},
        {"instruction": "Convert 25 kilometers to meters.", "input": "", "output": "25000 m.",
         "id": 4},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(entries))
    output = tmp_path / "out.json"
    result = run_script_in_process(SCRIPT, ["--json_file", str(path), "--threshold", "0.7",
                                            "--remove_duplicates", "--json_output_file",
                                            str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # "id" holds numbers, so it is not searched; "input" is empty everywhere
    assert [line for line in out.splitlines() if line.startswith("== Field")] == [
        "== Field 'instruction' ==", "== Field 'input' ==", "== Field 'output' =="]
    assert "1 near-duplicate pairs (similarity >= 0.7) in the 'instruction' field" in out
    assert "0 near-duplicate pairs (similarity >= 0.7) in the 'input' field" in out
    assert "#1: 'Red is the first one.'" in out and "#2: 'Red is the first one!'" in out
    assert [entry["id"] for entry in json.loads(output.read_text())] == [1, 2]

    only_output = run_script_in_process(SCRIPT, ["--json-file", str(path), "--key", "output",
                                                 "--threshold", "0.7"], cwd=tmp_path)
    assert "== Field" not in only_output.stdout and "kilometers" not in only_output.stdout
    assert "1 near-duplicate pairs (similarity >= 0.7) in the 'output' field of 4 entries" \
        in only_output.stdout

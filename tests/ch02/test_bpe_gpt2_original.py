"""Bonus 02: GPT-2's original BPE algorithm and Hugging Face's tokenizer vs tiktoken.

The original algorithm knows no special tokens, so it is compared with
tiktoken's `encode_ordinary`; Hugging Face treats "<|endoftext|>" as special,
so it is compared with `encode(..., allowed_special="all")`.
"""

import json

import pytest
from course_imports import import_course_module
from hypothesis import given, settings
from hypothesis import strategies as st

FOLDER = "ch02/02_bonus_bytepair-encoder"
original_bpe = import_course_module(f"{FOLDER}/gpt2_original_bpe.py")
benchmark = import_course_module(f"{FOLDER}/benchmark_tokenizers.py")
downloads = import_course_module(f"{FOLDER}/downloads.py")

INSTRUCTIONS_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch07/01_main-chapter-code/instruction-data.json"
)
INSTRUCTIONS_SHA256 = "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"
EOT = "<|endoftext|>"

TRICKY_PIECES = [
    EOT, " ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000", "\x1c", "\x85",
    "'s", "'ll", "'S", " 't", "123", " 4567", "Hello", " world", "é", "😀", "中文", "\u0301",
]
# Characters assigned in Python's Unicode database only: tiktoken's regex engine and the
# `regex` package may ship newer Unicode tables, and a code point assigned only there
# (e.g. U+323B0, a letter since Unicode 15) is a letter to one and punctuation to the
# other, so the two pre-tokenizers would legitimately split it differently.
assigned_characters = st.characters(exclude_categories=("Cs", "Cn"))
texts_with_tricky_pieces = st.lists(
    st.one_of(st.text(assigned_characters, max_size=10), st.sampled_from(TRICKY_PIECES)),
    max_size=10
).map("".join)


@pytest.fixture(scope="module")
def verdict_text(tmp_path_factory):
    return benchmark.read_benchmark_text(tmp_path_factory.mktemp("data") / "the-verdict.txt")


@pytest.fixture(scope="module")
def instruction_texts(tmp_path_factory):
    path = downloads.download_file(
        INSTRUCTIONS_URL, tmp_path_factory.mktemp("data") / "instruction-data.json",
        INSTRUCTIONS_SHA256,
    )
    records = json.loads(path.read_text(encoding="utf-8"))[::100]
    return [f"### Instruction:\n{r['instruction']}\n\n### Input:\n{r['input']}\n\n"
            f"### Response:\n{r['output']}" for r in records]


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    import tiktoken

    downloads.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def original():
    paths = downloads.gpt2_bpe_file_paths()
    return original_bpe.GPT2OriginalBPE.from_files(paths["encoder.json"], paths["vocab.bpe"])


@pytest.fixture(scope="module")
def hf_tokenizers():
    paths = downloads.gpt2_bpe_file_paths()
    return benchmark.load_hf_gpt2_tokenizers(paths["encoder.json"], paths["vocab.bpe"])


def test_byte_table_is_a_bijection_onto_printable_characters():
    table = original_bpe.bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(char.isprintable() and not char.isspace() for char in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


def test_the_verdict_equals_tiktoken(original, tiktoken_gpt2, verdict_text):
    ids = original.encode(verdict_text)
    assert ids == tiktoken_gpt2.encode_ordinary(verdict_text)
    assert len(ids) == 5145
    assert original.decode(ids) == verdict_text


def test_sample_and_instruction_texts_equal_tiktoken(original, tiktoken_gpt2,
                                                      instruction_texts):
    for text in [*benchmark.SAMPLE_TEXTS, *instruction_texts]:
        assert original.encode(text) == tiktoken_gpt2.encode_ordinary(text)


def test_end_of_text_is_ordinary_text_for_the_original(original, tiktoken_gpt2):
    ids = original.encode(f"tea{EOT}")
    assert 50256 not in ids
    assert ids == tiktoken_gpt2.encode_ordinary(f"tea{EOT}")


@settings(max_examples=150, deadline=None, database=None)
@given(text=texts_with_tricky_pieces)
def test_random_text_equals_tiktoken(original, tiktoken_gpt2, text):
    ids = original.encode(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert original.decode(ids) == text


def test_hugging_face_equals_tiktoken(hf_tokenizers, tiktoken_gpt2, verdict_text,
                                      instruction_texts):
    texts = [verdict_text, *benchmark.SAMPLE_TEXTS, *instruction_texts, f"tea{EOT} more"]
    for tokenizer in hf_tokenizers.values():
        for text in texts:
            assert tokenizer.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")


@settings(max_examples=100, deadline=None, database=None)
@given(text=texts_with_tricky_pieces)
def test_hugging_face_random_text_equals_tiktoken(hf_tokenizers, tiktoken_gpt2, text):
    expected = tiktoken_gpt2.encode(text, allowed_special="all")
    for tokenizer in hf_tokenizers.values():
        assert tokenizer.encode(text) == expected


def test_check_identical_ids_notices_a_difference(tiktoken_gpt2):
    encoders = {"tiktoken": tiktoken_gpt2.encode, "off by one": lambda t: [
        i + 1 for i in tiktoken_gpt2.encode(t)]}
    with pytest.raises(AssertionError, match="off by one"):
        benchmark.check_identical_ids(encoders, ["Hello"])

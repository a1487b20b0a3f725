"""Bonus 02: GPT-2's original BPE algorithm and Hugging Face's tokenizer vs tiktoken.

The original algorithm knows no special tokens, so it is compared with
tiktoken's `encode_ordinary`; Hugging Face treats "<|endoftext|>" as special,
so it is compared with `encode(..., allowed_special="all")`.
"""


import pytest
from support.course_imports import import_course_module
from support.gpt2_test_texts import EOT, texts_with_tricky_pieces
from hypothesis import given, settings

FOLDER = "ch02/02_bonus_bytepair-encoder"
original_bpe = import_course_module(f"{FOLDER}/gpt2_original_bpe.py")
benchmark = import_course_module(f"{FOLDER}/benchmark_tokenizers.py")
downloads = import_course_module(f"{FOLDER}/downloads.py")

@pytest.fixture(scope="module")
def verdict_text(the_verdict):
    return the_verdict


@pytest.fixture(scope="module")
def instruction_texts(instruction_records):
    records = instruction_records[::100]
    return [f"### Instruction:\n{r['instruction']}\n\n### Input:\n{r['input']}\n\n"
            f"### Response:\n{r['output']}" for r in records]


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


def test_the_verdict_equals_tiktoken(original, gpt2_tokenizer, verdict_text):
    ids = original.encode(verdict_text)
    assert ids == gpt2_tokenizer.encode_ordinary(verdict_text)
    assert len(ids) == 5145
    assert original.decode(ids) == verdict_text


def test_sample_and_instruction_texts_equal_tiktoken(original, gpt2_tokenizer,
                                                      instruction_texts):
    for text in [*benchmark.SAMPLE_TEXTS, *instruction_texts]:
        assert original.encode(text) == gpt2_tokenizer.encode_ordinary(text)


def test_end_of_text_is_ordinary_text_for_the_original(original, gpt2_tokenizer):
    ids = original.encode(f"tea{EOT}")
    assert 50256 not in ids
    assert ids == gpt2_tokenizer.encode_ordinary(f"tea{EOT}")


@settings(max_examples=150, deadline=None, database=None)
@given(text=texts_with_tricky_pieces)
def test_random_text_equals_tiktoken(original, gpt2_tokenizer, text):
    ids = original.encode(text)
    assert ids == gpt2_tokenizer.encode_ordinary(text)
    assert original.decode(ids) == text


def test_hugging_face_equals_tiktoken(hf_tokenizers, gpt2_tokenizer, verdict_text,
                                      instruction_texts):
    texts = [verdict_text, *benchmark.SAMPLE_TEXTS, *instruction_texts, f"tea{EOT} more"]
    for tokenizer in hf_tokenizers.values():
        for text in texts:
            assert tokenizer.encode(text) == gpt2_tokenizer.encode(text, allowed_special="all")


@settings(max_examples=100, deadline=None, database=None)
@given(text=texts_with_tricky_pieces)
def test_hugging_face_random_text_equals_tiktoken(hf_tokenizers, gpt2_tokenizer, text):
    expected = gpt2_tokenizer.encode(text, allowed_special="all")
    for tokenizer in hf_tokenizers.values():
        assert tokenizer.encode(text) == expected


def test_check_identical_ids_notices_a_difference(gpt2_tokenizer):
    encoders = {"tiktoken": gpt2_tokenizer.encode, "off by one": lambda t: [
        i + 1 for i in gpt2_tokenizer.encode(t)]}
    with pytest.raises(AssertionError, match="off by one"):
        benchmark.check_identical_ids(encoders, ["Hello"])

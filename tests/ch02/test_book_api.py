"""Chapter 2's code called exactly as the book calls it.

Readers type the book's listings: these tests use the book's names, argument
names and call sequences, and check what comes back: the simple tokenizers'
decode (the book's punctuation rule) and the from-scratch BPE tokenizer of
ch02/05_bpe-from-scratch (train, encode, decode, save and load, OpenAI's files).
"""

import re

import pytest
from support.course_imports import import_course_module
from hypothesis import given, settings
from hypothesis import strategies as st

BPE_FOLDER = "ch02/05_bpe-from-scratch"
bpe = import_course_module(f"{BPE_FOLDER}/bpe_from_scratch.py")
downloads = import_course_module(f"{BPE_FOLDER}/downloads.py")

FAST = settings(max_examples=40, derandomize=True, deadline=None)


def book_decode(int_to_str, ids):
    """The book's SimpleTokenizerV1.decode, as its listing 2.3 writes it."""
    text = " ".join(int_to_str[i] for i in ids)
    return re.sub(r'\s+([,.?!"()\'])', r"\1", text)


# ----- SimpleTokenizerV1 / V2 decode -------------------------------------------


def test_v1_decodes_the_books_example(ch02_notebook, verdict_vocab):
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    text = """"It's the last he painted, you know," Mrs. Gisburn said with pardonable pride."""
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == (
        '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    )


def test_decode_removes_spaces_before_exactly_the_books_punctuation(ch02_notebook,
                                                                     verdict_vocab):
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    word = verdict_vocab["said"]
    for mark in ',.?!"()\'':
        assert tokenizer.decode([word, verdict_vocab[mark]]) == "said" + mark
    for token in [":", ";", "--"]:
        assert tokenizer.decode([word, verdict_vocab[token]]) == "said " + token


@FAST
@given(data=st.data())
def test_v1_and_v2_decode_like_the_books_listing(ch02_notebook, verdict_vocab, data):
    ids = data.draw(st.lists(st.integers(0, len(verdict_vocab) - 1), max_size=25))
    int_to_str = {i: token for token, i in verdict_vocab.items()}
    for tokenizer_class in (ch02_notebook.SimpleTokenizerV1, ch02_notebook.SimpleTokenizerV2):
        assert tokenizer_class(verdict_vocab).decode(ids) == book_decode(int_to_str, ids)


# ----- BPETokenizerSimple (ch02/05_bpe-from-scratch) -----------------------------


@pytest.fixture(scope="module")
def book_tokenizer(the_verdict):
    """Trained as the book trains it: The Verdict, 1,000 tokens, <|endoftext|> allowed."""
    tokenizer = bpe.BPETokenizerSimple()
    tokenizer.train(the_verdict, vocab_size=1000, allowed_special={"<|endoftext|>"})
    return tokenizer


def test_training_reaches_the_books_vocabulary_and_merges(book_tokenizer):
    assert len(book_tokenizer.vocab) == 1000
    assert len(book_tokenizer.inverse_vocab) == 1000
    # the book's base vocabulary: chr(0)-chr(255), then "Ġ" (the only other
    # character of the processed story), then <|endoftext|>; 742 merges follow
    assert [book_tokenizer.vocab[i] for i in range(256)] == [chr(i) for i in range(256)]
    assert book_tokenizer.vocab[256] == "Ġ"
    assert book_tokenizer.inverse_vocab["<|endoftext|>"] == 257
    assert len(book_tokenizer.bpe_merges) == 742


def test_vocab_inverse_vocab_and_bpe_merges_fit_together(book_tokenizer):
    tokenizer = book_tokenizer
    for (p0, p1), new_id in tokenizer.bpe_merges.items():
        assert tokenizer.vocab[p0] + tokenizer.vocab[p1] == tokenizer.vocab[new_id]
        assert tokenizer.inverse_vocab[tokenizer.vocab[new_id]] == new_id
    assert list(tokenizer.bpe_merges.values()) == list(range(258, 1000))


def test_encode_and_decode_as_in_the_book(book_tokenizer):
    tokenizer = book_tokenizer
    input_text = "Jack embraced beauty through art and life."
    token_ids = tokenizer.encode(input_text)
    # the ids the book's notebook prints for this sentence
    assert token_ids == [424, 256, 654, 531, 302, 311, 256, 296, 97, 465, 121, 595, 841,
                         116, 287, 466, 256, 326, 972, 46]
    assert tokenizer.decode(token_ids) == input_text
    assert "".join(tokenizer.decode([token_id]) for token_id in token_ids) == input_text
    for text in ["This is some text.", "This is some text with \n newline characters."]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    with_special = tokenizer.encode("life.<|endoftext|> ", allowed_special={"<|endoftext|>"})
    assert with_special == [326, 972, 46, 257]
    with pytest.raises(ValueError, match="<.endoftext.>"):
        tokenizer.encode("a<|endoftext|>", allowed_special={"<|other|>"})
    with pytest.raises(ValueError, match="<.other.>"):
        tokenizer.encode("a<|other|>", allowed_special={"<|other|>"})


def test_byte_level_tokenizer_stays_beside_the_books(the_verdict):
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.train(the_verdict, vocab_size=1000, allowed_special={"<|endoftext|>"})
    assert len(tokenizer.bpe_merges) == 743  # 256 bytes + 743 merges + 1 special token
    assert tokenizer.decode(tokenizer.encode(the_verdict)) == the_verdict  # lossless


def test_save_and_load_vocab_and_merges_as_in_the_book(book_tokenizer, the_verdict, tmp_path):
    vocab_path, merges_path = tmp_path / "vocab.json", tmp_path / "bpe_merges.txt"
    book_tokenizer.save_vocab_and_merges(vocab_path=vocab_path, bpe_merges_path=merges_path)
    tokenizer2 = bpe.BPETokenizerSimple()
    tokenizer2.load_vocab_and_merges(vocab_path=vocab_path, bpe_merges_path=merges_path)
    assert tokenizer2.vocab == book_tokenizer.vocab
    assert tokenizer2.inverse_vocab == book_tokenizer.inverse_vocab
    assert tokenizer2.bpe_merges == book_tokenizer.bpe_merges
    token_ids = book_tokenizer.encode(the_verdict)
    assert tokenizer2.encode(the_verdict) == token_ids
    assert tokenizer2.decode(token_ids) == book_tokenizer.decode(token_ids)
    # the book's decoding keeps the words; runs of whitespace come back as one space
    assert tokenizer2.decode(token_ids).split() == the_verdict.split()


def test_openai_files_encode_like_tiktoken(gpt2_tokenizer, the_verdict):
    paths = downloads.gpt2_bpe_file_paths()
    tokenizer_gpt2 = bpe.BPETokenizerSimple()
    tokenizer_gpt2.load_vocab_and_merges_from_openai(
        vocab_path=paths["encoder.json"], bpe_merges_path=paths["vocab.bpe"]
    )
    assert len(tokenizer_gpt2.vocab) == 50257
    assert tokenizer_gpt2.vocab[50256] == "<|endoftext|>"
    assert tokenizer_gpt2.inverse_vocab["Ġthe"] == 262
    assert tokenizer_gpt2.encode("This is some text") == [1212, 318, 617, 2420]
    for text in [the_verdict, "Hello, do you like tea? In the sunlit terraces of the palace."]:
        assert tokenizer_gpt2.encode(text) == gpt2_tokenizer.encode(text)
        assert tokenizer_gpt2.decode(tokenizer_gpt2.encode(text)) == text

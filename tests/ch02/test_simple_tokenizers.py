"""SimpleTokenizerV1/V2 and the regex splitter from ch02.ipynb: round trips and errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PUNCTUATION = list(',.:;?_!"()\'') + ["--"]
# Few, deterministic examples: the suite must stay fast and repeatable.
FAST = settings(max_examples=60, derandomize=True, deadline=None)


def test_split_keeps_punctuation_and_double_dashes_as_tokens(ch02_notebook):
    assert ch02_notebook.split_into_tokens("Hello, world. Is this-- a test?") == [
        "Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"
    ]
    # a single dash is part of a word; whitespace of any kind separates
    assert ch02_notebook.split_into_tokens("well-known\n\tfact") == ["well-known", "fact"]


@FAST
@given(st.text(alphabet=st.sampled_from(list("ab- \n\t,.:;?_!\"()'é")), max_size=40))
def test_split_only_drops_whitespace(ch02_notebook, text):
    tokens = ch02_notebook.split_into_tokens(text)
    assert "".join(tokens) == "".join(ch for ch in text if not ch.isspace())
    assert all(token and not any(ch.isspace() for ch in token) for token in tokens)


def test_v1_raises_key_error_naming_the_unknown_word(ch02_notebook, verdict_vocab):
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    with pytest.raises(KeyError, match="Hello"):
        tokenizer.encode("Hello, do you like tea?")


def test_v1_decode_reattaches_punctuation(ch02_notebook, verdict_vocab):
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    text = "I had always thought Jack Gisburn rather a cheap genius--though a good fellow."
    assert tokenizer.decode(tokenizer.encode(text)) == (
        "I had always thought Jack Gisburn rather a cheap genius -- though a good fellow."
    )


def test_v1_round_trips_the_whole_story(ch02_notebook, verdict_vocab, the_verdict):
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    ids = tokenizer.encode(the_verdict)
    assert len(ids) == 4690
    assert tokenizer.encode(tokenizer.decode(ids)) == ids


@FAST
@given(data=st.data())
def test_v1_encode_after_decode_gives_the_same_ids(ch02_notebook, verdict_vocab, data):
    """Any id sequence survives decode then encode (spacing may change, tokens not)."""
    ids = data.draw(st.lists(st.integers(0, len(verdict_vocab) - 1), max_size=30))
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    assert tokenizer.encode(tokenizer.decode(ids)) == ids


def test_v2_needs_an_unk_token(ch02_notebook):
    with pytest.raises(ValueError, match="<\\|unk\\|>"):
        ch02_notebook.SimpleTokenizerV2({"hello": 0})


def test_v2_keeps_endoftext_as_one_token(ch02_notebook, verdict_vocab):
    tokenizer = ch02_notebook.SimpleTokenizerV2(verdict_vocab)
    ids = tokenizer.encode("Hello? <|endoftext|> In")
    assert ids == [verdict_vocab["<|unk|>"], verdict_vocab["?"],
                   verdict_vocab["<|endoftext|>"], verdict_vocab["In"]]


@FAST
@given(data=st.data())
def test_v2_maps_exactly_the_unknown_words_to_unk(ch02_notebook, verdict_vocab, data):
    known = st.sampled_from(sorted(verdict_vocab))
    unknown = st.sampled_from(["Hello", "palace", "someunknownPlace", "tea-time", "Zürich"])
    separator = st.sampled_from([" ", "\n", "  "])
    words = data.draw(st.lists(st.tuples(st.one_of(known, unknown), separator), max_size=20))
    text = "".join(word + sep for word, sep in words)

    tokenizer = ch02_notebook.SimpleTokenizerV2(verdict_vocab)
    ids = tokenizer.encode(text)

    expected = [verdict_vocab.get(token, verdict_vocab["<|unk|>"])
                for token in ch02_notebook.split_into_tokens(text)]
    assert ids == expected
    assert tokenizer.encode(tokenizer.decode(ids)) == ids

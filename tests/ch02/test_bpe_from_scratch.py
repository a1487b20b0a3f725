"""The from-scratch BPE tokenizer (ch02/05_bpe-from-scratch) against tiktoken.

Loaded with GPT-2's files it must give tiktoken's ids on real and random text,
handle "<|endoftext|>" the way tiktoken does, and round-trip any text. Trained
on the-verdict it must learn the same merges as a slow, obviously correct
trainer, round-trip the text, and survive saving and loading.
"""

import json
from collections import Counter
from itertools import pairwise

import pytest
from support.course_imports import import_course_module
from support.gpt2_test_texts import EOT, texts_with_tricky_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

FOLDER = "ch02/05_bpe-from-scratch"
bpe = import_course_module(f"{FOLDER}/bpe_from_scratch.py")
downloads = import_course_module(f"{FOLDER}/downloads.py")

@pytest.fixture(scope="module")
def instruction_texts(instruction_records):
    """A few Alpaca-style prompts with responses, as chapter 7 formats them."""
    texts = []
    for record in instruction_records[::100]:
        text = (
            "Below is an instruction that describes a task. Write a response that "
            f"appropriately completes the request.\n\n### Instruction:\n{record['instruction']}"
        )
        if record["input"]:
            text += f"\n\n### Input:\n{record['input']}"
        texts.append(f"{text}\n\n### Response:\n{record['output']}{EOT}")
    return texts


@pytest.fixture(scope="module")
def ours_gpt2():
    paths = downloads.gpt2_bpe_file_paths()
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.load_vocab_and_merges_from_openai(paths["encoder.json"], paths["vocab.bpe"])
    return tokenizer


@pytest.fixture(scope="module")
def trained_on_verdict(the_verdict):
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.train(the_verdict, vocab_size=1000, allowed_special={EOT})
    return tokenizer


def outcome(encode, text, **kwargs):
    """The ids, or the name of the error: both tokenizers must agree on either."""
    try:
        return encode(text, **kwargs)
    except ValueError:
        return "ValueError"


# ----- GPT-2's vocabulary: same ids as tiktoken ------------------------------


def test_gpt2_vocabulary_loaded_completely(ours_gpt2):
    assert len(ours_gpt2.vocab) == 50257
    assert len(ours_gpt2.bpe_merges) == 50000
    assert ours_gpt2.special_tokens == {EOT: 50256}


def test_book_example_with_end_of_text(ours_gpt2):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    assert ours_gpt2.encode(text, allowed_special={EOT}) == [
        15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114,
        286, 617, 34680, 27271, 13,
    ]


def test_the_verdict_equals_tiktoken(ours_gpt2, gpt2_tokenizer, the_verdict):
    ids = ours_gpt2.encode(the_verdict)
    assert ids == gpt2_tokenizer.encode(the_verdict)
    assert len(ids) == 5145
    assert ours_gpt2.decode(ids) == the_verdict


def test_instruction_text_equals_tiktoken(ours_gpt2, gpt2_tokenizer, instruction_texts):
    for text in instruction_texts:
        expected = gpt2_tokenizer.encode(text, allowed_special={EOT})
        assert ours_gpt2.encode(text, allowed_special={EOT}) == expected
        assert expected[-1] == 50256


@settings(max_examples=150, deadline=None, database=None)
@given(text=texts_with_tricky_pieces)
def test_random_text_equals_tiktoken(ours_gpt2, gpt2_tokenizer, text):
    assert ours_gpt2.encode_ordinary(text) == gpt2_tokenizer.encode_ordinary(text)
    for kwargs in [{}, {"allowed_special": {EOT}}, {"allowed_special": "all"},
                   {"disallowed_special": ()}]:
        expected = outcome(gpt2_tokenizer.encode, text, **kwargs)
        assert outcome(ours_gpt2.encode, text, **kwargs) == expected, kwargs


def test_disallowed_special_token_raises_like_tiktoken(ours_gpt2, gpt2_tokenizer):
    text = f"first document{EOT}second document"
    with pytest.raises(ValueError):
        gpt2_tokenizer.encode(text)
    with pytest.raises(ValueError, match="endoftext"):
        ours_gpt2.encode(text)
    as_plain_text = ours_gpt2.encode(text, disallowed_special=())
    assert 50256 not in as_plain_text
    assert as_plain_text == gpt2_tokenizer.encode(text, disallowed_special=())


@settings(max_examples=150, deadline=None, database=None)
@given(text=st.one_of(st.text(), texts_with_tricky_pieces))
def test_decode_inverts_encode(ours_gpt2, text):
    assert ours_gpt2.decode(ours_gpt2.encode(text, allowed_special="all")) == text


# ----- training -----------------------------------------------------------------


def naive_train_merges(text, num_merges):
    """Reference trainer: recount every pair from scratch before each merge."""
    chunk_counts = Counter(bpe.SPLIT_REGEX.findall(text))
    words = {chunk: list(chunk.encode("utf-8")) for chunk in chunk_counts}
    merges = []
    for new_id in range(256, 256 + num_merges):
        pair_counts = Counter()
        for chunk, ids in words.items():
            for pair in pairwise(ids):
                pair_counts[pair] += chunk_counts[chunk]
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        merges.append(best)
        for chunk, ids in words.items():
            words[chunk] = bpe.merge_adjacent_pair(ids, best, new_id)
    return merges


def test_training_matches_the_slow_reference(the_verdict):
    text = the_verdict[:3000]
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.train(text, vocab_size=256 + 100, allowed_special=())
    assert list(tokenizer.bpe_merges) == naive_train_merges(text, 100)


@settings(max_examples=40, deadline=None, database=None)
@given(text=st.text(alphabet="ab c\nd'é", max_size=60), num_merges=st.integers(0, 20))
def test_training_matches_the_slow_reference_on_random_text(text, num_merges):
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.train(text, vocab_size=256 + num_merges, allowed_special=())
    assert list(tokenizer.bpe_merges) == naive_train_merges(text, num_merges)


def test_trained_tokenizer_round_trips_the_verdict(trained_on_verdict, the_verdict):
    tokenizer = trained_on_verdict
    assert len(tokenizer.vocab) == 1000
    assert tokenizer.special_tokens == {EOT: 999}
    ids = tokenizer.encode(the_verdict)
    assert tokenizer.decode(ids) == the_verdict
    # Learned merges must compress: far fewer tokens than bytes.
    assert len(ids) < 0.5 * len(the_verdict.encode("utf-8"))
    assert max(ids) >= 900


def test_trained_tokenizer_keeps_special_tokens_out_of_merges(the_verdict):
    tokenizer = bpe.ByteLevelBPETokenizer()
    tokenizer.train(f"{the_verdict}{EOT}" * 2, vocab_size=400, allowed_special={EOT})
    assert all(b"<|" not in token for token in tokenizer.token_bytes.values())
    ids = tokenizer.encode(f"tea{EOT}", allowed_special={EOT})
    assert ids[-1] == tokenizer.special_tokens[EOT] == 399
    assert tokenizer.decode(ids) == f"tea{EOT}"


def test_vocab_size_too_small_is_rejected():
    with pytest.raises(ValueError, match="at least 257"):
        bpe.ByteLevelBPETokenizer().train("text", vocab_size=256, allowed_special={EOT})


# ----- saving and loading ---------------------------------------------------------


def test_save_and_load_round_trip(trained_on_verdict, the_verdict, tmp_path):
    vocab_path, merges_path = tmp_path / "vocab.json", tmp_path / "merges.json"
    trained_on_verdict.save_vocab_and_merges(vocab_path, merges_path)
    loaded = bpe.ByteLevelBPETokenizer()
    loaded.load_vocab_and_merges(vocab_path, merges_path)
    assert loaded.vocab == trained_on_verdict.vocab
    assert loaded.bpe_merges == trained_on_verdict.bpe_merges
    assert loaded.special_tokens == trained_on_verdict.special_tokens
    text = f"{the_verdict[:2000]}{EOT}"
    assert loaded.encode(text, allowed_special="all") == trained_on_verdict.encode(
        text, allowed_special="all"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merges.json", "vocab.json"]


def test_gpt2_vocabulary_survives_save_and_load(ours_gpt2, gpt2_tokenizer, the_verdict, tmp_path):
    ours_gpt2.save_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.json")
    loaded = bpe.ByteLevelBPETokenizer()
    loaded.load_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.json")
    assert loaded.special_tokens == {EOT: 50256}
    assert loaded.encode(the_verdict) == gpt2_tokenizer.encode(the_verdict)


def test_loading_inconsistent_merges_fails(trained_on_verdict, tmp_path):
    vocab_path, merges_path = tmp_path / "vocab.json", tmp_path / "merges.json"
    trained_on_verdict.save_vocab_and_merges(vocab_path, merges_path)
    merges = json.loads(merges_path.read_text())
    merges[0]["pair"], merges[1]["pair"] = merges[1]["pair"], merges[0]["pair"]
    merges_path.write_text(json.dumps(merges))
    with pytest.raises(ValueError, match="does not match"):
        bpe.ByteLevelBPETokenizer().load_vocab_and_merges(vocab_path, merges_path)

"""The Llama tokenizers of the notebooks, id for id against independent references.

Meta's tokenizer files are gated, so the tests make their own in the same
formats: a SentencePiece BPE model trained like Llama 2's, and a byte-level BPE
file in tiktoken's format learned with Llama 3's pre-tokenization pattern,
followed by Llama 3's 256 special tokens. References: the `sentencepiece`
library (what Meta uses for Llama 2), `tiktoken` set up directly from the file,
and, for Llama 3, Hugging Face's Rust `tokenizers` converted from the same file.
(Hugging Face's conversion of a SentencePiece model is not exact: it splits runs
of spaces differently, so it is no reference for Llama 2.)
"""

import pytest
import sentencepiece as spm
import tiktoken
from support.gpt2_test_texts import texts_with_tricky_pieces
from hypothesis import given, settings
from support.llama_checkpoints import (
    LLAMA3_PATTERN,
    LLAMA3_SPECIAL_TOKENS,
    NUM_BPE_TOKENS,
    learn_bpe_ranks,
    train_sentencepiece,
    write_tiktoken_bpe,
)
from support.course_imports import notebook_definitions
from tiktoken.load import load_tiktoken_bpe
from transformers.convert_slow_tokenizer import TikTokenConverter

llama2_nb = notebook_definitions("ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb")
llama3_nb = notebook_definitions("ch05/07_gpt_to_llama/standalone-llama32.ipynb")

TEXTS = [
    "", "Every effort moves you", "What do llamas eat?", "  leading and trailing  ",
    "Hello,\n\nworld!\r\n\ttabbed", "Numbers: 1234567 and 3.14159, 2024-12-03.",
    "They're here; we'll see. I'M SURE YOU'VE SEEN IT.", "café naïve piñata 中文 😀🦙",
    "<|begin_of_text|> is just text here, and so is <|eot_id|>.", "'s 't 're",
    "\u00a0non-breaking\u3000spaces", "a" * 300, "x\n", "\n\n\n",
]


@pytest.fixture(scope="module")
def sentencepiece_tokenizers(tmp_path_factory):
    path = train_sentencepiece(tmp_path_factory.mktemp("llama2-tokenizer") / "tokenizer.model")
    return llama2_nb.LlamaTokenizer(path), spm.SentencePieceProcessor(model_file=str(path))


def check_sentencepiece(tokenizers, text):
    ours, reference = tokenizers
    ids = ours.encode(text)
    assert ids == reference.encode(text)
    assert ours.decode(ids) == reference.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS)
def test_sentencepiece_ids_match_references(sentencepiece_tokenizers, text):
    check_sentencepiece(sentencepiece_tokenizers, text)


@settings(max_examples=40, deadline=None)
@given(text=texts_with_tricky_pieces)
def test_sentencepiece_ids_match_on_generated_text(sentencepiece_tokenizers, text):
    check_sentencepiece(sentencepiece_tokenizers, text)


def test_sentencepiece_bos_eos_and_byte_fallback(sentencepiece_tokenizers):
    ours, reference = sentencepiece_tokenizers
    assert (ours.bos_id, ours.eos_id) == (1, 2)
    assert (reference.id_to_piece(1), reference.id_to_piece(2)) == ("<s>", "</s>")
    ids = ours.encode("Every effort", bos=True, eos=True)
    assert ids == [1] + reference.encode("Every effort") + [2]
    # A character the training text never had is spelt in UTF-8 bytes, not <unk>.
    pieces = reference.id_to_piece(ours.encode("\u2603"))
    assert pieces[-3:] == ["<0xE2>", "<0x98>", "<0x83>"]
    assert ours.decode(ours.encode("snow \u2603 man")) == "snow \u2603 man"


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory):
    return write_tiktoken_bpe(tmp_path_factory.mktemp("llama3-tokenizer") / "tokenizer.model")


@pytest.fixture(scope="module")
def llama3_tokenizers(bpe_file):
    """Ours, tiktoken set up directly from the file, and Hugging Face's conversion of it."""
    ranks = load_tiktoken_bpe(str(bpe_file))
    reference = tiktoken.Encoding(
        name="reference", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
        special_tokens={token: len(ranks) + i for i, token in enumerate(LLAMA3_SPECIAL_TOKENS)},
    )
    hf = TikTokenConverter(vocab_file=str(bpe_file), pattern=LLAMA3_PATTERN,
                           extra_special_tokens=LLAMA3_SPECIAL_TOKENS).converted()
    return llama3_nb.Llama3Tokenizer(bpe_file), reference, hf


def check_llama3(tokenizers, text):
    ours, reference, hf = tokenizers
    ids = ours.encode(text)
    assert ids == reference.encode(text, disallowed_special=())
    if "<|" not in text:  # Hugging Face always treats special-token text as special
        assert ids == hf.encode(text, add_special_tokens=False).ids
    assert ours.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS)
def test_llama3_ids_match_references(llama3_tokenizers, text):
    check_llama3(llama3_tokenizers, text)


@settings(max_examples=40, deadline=None)
@given(text=texts_with_tricky_pieces)
def test_llama3_ids_match_on_generated_text(llama3_tokenizers, text):
    check_llama3(llama3_tokenizers, text)


def test_llama3_special_tokens(llama3_tokenizers):
    ours, reference, _ = llama3_tokenizers
    assert len(learn_bpe_ranks()) == NUM_BPE_TOKENS
    # The real file has 128,000 BPE tokens, so <|begin_of_text|> is 128000 there.
    expected = {token: NUM_BPE_TOKENS + i for i, token in enumerate(LLAMA3_SPECIAL_TOKENS)}
    assert ours.special_tokens == expected
    assert llama3_nb.LLAMA3_PATTERN == LLAMA3_PATTERN
    begin, end = ours.special_tokens["<|begin_of_text|>"], ours.special_tokens["<|end_of_text|>"]
    assert ours.encode("Hi", bos=True, eos=True) == [begin] + reference.encode("Hi") + [end]
    # Special-token text in user input stays text unless explicitly allowed.
    eot = ours.special_tokens["<|eot_id|>"]
    assert eot not in ours.encode("<|eot_id|>")
    assert ours.encode("<|eot_id|>", allowed_special={"<|eot_id|>"}) == [eot]


CHAT_TEMPLATE = ("<|begin_of_text|>{system}<|start_header_id|>user<|end_header_id|>\n\n"
                 "{text}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
SYSTEM_TEMPLATE = "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"


@pytest.mark.parametrize("system", [None, "You are a helpful assistant."])
@pytest.mark.parametrize("text", [t for t in TEXTS if "<|" not in t])
def test_chat_format_equals_the_template_tokenized_whole(llama3_tokenizers, system, text):
    ours, reference, hf = llama3_tokenizers
    chat = llama3_nb.ChatFormat(ours, default_system=system)
    prompt = CHAT_TEMPLATE.format(
        system=SYSTEM_TEMPLATE.format(system=system) if system else "", text=text.strip())
    ids = chat.encode(text)
    assert ids == reference.encode(prompt, allowed_special="all")
    assert ids == hf.encode(prompt, add_special_tokens=False).ids
    assert chat.decode(ids) == prompt

"""GPT-2's byte-pair encoder, written out the way OpenAI originally described it.

OpenAI released GPT-2's tokenizer as two data files plus a short algorithm:

- `encoder.json` maps 50,257 token strings to ids,
- `vocab.bpe` lists 50,000 merges ("Ġ t", "Ġ a", ...), most important first,
- text is split into chunks with a regular expression, each chunk's UTF-8
  bytes are written as printable characters, and the chunk is merged
  pair by pair, always taking the pair that appears earliest in `vocab.bpe`.

This module implements that algorithm in plain Python so it can be read and
compared with tiktoken and Hugging Face's tokenizer (see the notebook
`compare-bpe-tokenizers.ipynb` and `benchmark_tokenizers.py` next to it).
"""

import json
from itertools import pairwise
from pathlib import Path

import regex

# GPT-2's pre-tokenization rule. A chunk is one of: a common English
# contraction ('s, 't, ...), letters, digits, or other symbols (each optionally
# led by one space), or a run of whitespace. Merges never cross chunks, so
# " the" and "the," can never become one token. `\p{L}` / `\p{N}` are Unicode
# letter / number classes: they need the `regex` package, not Python's `re`.
# Copied from ch02/02_bonus_bytepair-encoder/compare-bpe-tokenizers.ipynb::GPT2_SPLIT_PATTERN
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


# Copied from ch02/02_bonus_bytepair-encoder/compare-bpe-tokenizers.ipynb::bytes_to_unicode
def bytes_to_unicode():
    """GPT-2's table giving each of the 256 byte values a visible character.

    BPE works on bytes, but GPT-2's files store tokens as text. Bytes that are
    already visible characters ('!' to '~', and the Latin-1 ranges '¡' to '¬'
    and '®' to 'ÿ') stand for themselves. The other 68 bytes (control codes,
    the space, ...) are given the characters U+0100, U+0101, ... in byte
    order. That is why a space appears as 'Ġ' (U+0120) in `vocab.bpe`.
    """
    visible = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    table = {}
    next_spare_code_point = 256
    for byte in range(256):
        if byte in visible:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(next_spare_code_point)
            next_spare_code_point += 1
    return table


# Copied from ch02/02_bonus_bytepair-encoder/compare-bpe-tokenizers.ipynb::GPT2OriginalBPE
class GPT2OriginalBPE:
    """GPT-2's tokenizer: the original merge-by-pair-rank algorithm, in Python.

    `encoder` maps token strings (bytes written with `bytes_to_unicode`) to
    ids; `merges` is the ordered list of symbol pairs from `vocab.bpe`. Like
    OpenAI's original code, this class knows no special tokens: the text
    "<|endoftext|>" is encoded as ordinary characters (tiktoken's
    `encode_ordinary` does the same).
    """

    def __init__(self, encoder, merges):
        self.encoder = dict(encoder)
        self.decoder = {token_id: token for token, token_id in self.encoder.items()}
        # A pair's rank is its line number in vocab.bpe: lower = merged first.
        self.merge_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_to_char = bytes_to_unicode()
        self.char_to_byte = {char: byte for byte, char in self.byte_to_char.items()}
        self.split_pattern = regex.compile(GPT2_SPLIT_PATTERN)
        # Texts repeat their words a lot; remembering each chunk's result
        # makes the (slow) merge loop run once per distinct chunk.
        self.cache = {}

    @classmethod
    def from_files(cls, encoder_json_path, vocab_bpe_path):
        """Read OpenAI's `encoder.json` and `vocab.bpe`."""
        encoder = json.loads(Path(encoder_json_path).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe_path).read_text(encoding="utf-8").splitlines()
        # The first line is a version comment ("#version: 0.2").
        merges = [tuple(line.split()) for line in lines[1:] if line]
        return cls(encoder, merges)

    def bpe(self, chunk):
        """Split one pre-tokenized chunk (in byte characters) into token strings.

        Start from single characters. While some neighbouring pair is in the
        merge list, take the pair with the lowest rank and join every
        occurrence of it (scanning left to right).
        """
        if chunk in self.cache:
            return self.cache[chunk]
        symbols = list(chunk)
        while len(symbols) > 1:
            neighbours = set(pairwise(symbols))
            best = min(neighbours, key=lambda pair: self.merge_ranks.get(pair, float("inf")))
            if best not in self.merge_ranks:
                break
            symbols = join_pair(symbols, best)
        self.cache[chunk] = symbols
        return symbols

    def encode(self, text):
        """Text -> token ids."""
        ids = []
        for chunk in self.split_pattern.findall(text):
            as_chars = "".join(self.byte_to_char[byte] for byte in chunk.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self.bpe(as_chars))
        return ids

    def decode(self, ids):
        """Token ids -> text (bytes that are not valid UTF-8 become '�')."""
        chars = "".join(self.decoder[token_id] for token_id in ids)
        raw = bytes(self.char_to_byte[char] for char in chars)
        return raw.decode("utf-8", errors="replace")


# Copied from ch02/02_bonus_bytepair-encoder/compare-bpe-tokenizers.ipynb::join_pair
def join_pair(symbols, pair):
    """Replace each occurrence of `pair` in `symbols`, left to right, by one symbol."""
    first, second = pair
    joined = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            joined.append(first + second)
            i += 2
        else:
            joined.append(symbols[i])
            i += 1
    return joined

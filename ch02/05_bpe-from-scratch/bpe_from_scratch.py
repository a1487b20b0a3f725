"""A byte-level BPE tokenizer written from scratch (no tokenizer library).

`ByteLevelBPETokenizer` can
- learn a vocabulary from text (`train`),
- turn text into token ids and back (`encode`, `decode`),
- save what it learned and load it again (`save_vocab_and_merges`,
  `load_vocab_and_merges`),
- load OpenAI's GPT-2 files (`load_vocab_and_merges_from_openai`); it then
  gives exactly the ids of `tiktoken.get_encoding("gpt2")`, special tokens
  included.

The names and attributes (`vocab`, `inverse_vocab`, `bpe_merges`) are the
book's; underneath, the tokenizer is byte-level like GPT-2's.

`BPETokenizerSimple` is the book's own tokenizer, with the same calls: it
works on characters (spaces marked "Ġ") and gives the book's vocabulary,
merges and ids (742 merges on The Verdict with 1,000 tokens and
<|endoftext|>); readers typing the book's listings get the book's numbers.

The notebook `bpe-from-scratch.ipynb` explains every piece; the helper
functions below are the steps it walks through.
"""

import heapq
import json
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import regex
from downloads import atomic_write

# GPT-2's pre-tokenization rule: contractions, runs of letters, of digits or
# of other symbols (each may carry one leading space), and runs of whitespace.
# BPE merges happen inside these chunks only.
# Copied from ch02/02_bonus_bytepair-encoder/compare-bpe-tokenizers.ipynb::GPT2_SPLIT_PATTERN
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::SPLIT_REGEX
SPLIT_REGEX = regex.compile(GPT2_SPLIT_PATTERN)
# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::GPT2_END_OF_TEXT
GPT2_END_OF_TEXT = "<|endoftext|>"
# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::NO_TOKEN
NO_TOKEN = float("inf")  # rank of a byte sequence that is not a token


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


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::merge_adjacent_pair
def merge_adjacent_pair(ids, pair, new_id):
    """Replace each occurrence of `pair` in `ids`, left to right, by `new_id`."""
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::learn_bpe_merges
def learn_bpe_merges(words, word_counts, num_merges, first_new_id=256):
    """The BPE training loop: return up to `num_merges` pairs, in learning order.

    `words` are the distinct pre-tokenized chunks as lists of ids (changed in
    place) and `word_counts` says how often each occurs in the text. Merge
    number k creates id `first_new_id + k` from the most frequent adjacent
    pair; among equally frequent pairs the one with the smallest ids wins, so
    training is deterministic.

    Counting every pair in every word after each merge would repeat almost
    all of the work. Instead the counts are kept up to date: a merge only
    changes the words that contain the merged pair, so only those words have
    their pairs uncounted and counted again. A heap finds the most frequent
    pair; entries whose count has since changed are skipped when popped.
    """
    pair_counts = Counter()
    words_with_pair = defaultdict(set)
    for index, (word, count) in enumerate(zip(words, word_counts, strict=True)):
        for pair in pairwise(word):
            pair_counts[pair] += count
            words_with_pair[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while heap and len(merges) < num_merges:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -negative_count:
            continue  # outdated heap entry
        new_id = first_new_id + len(merges)
        merges.append(pair)
        changed_pairs = set()
        for index in words_with_pair.pop(pair):
            old_word = words[index]
            new_word = merge_adjacent_pair(old_word, pair, new_id)
            if len(new_word) == len(old_word):
                continue  # the word lost this pair in an earlier merge
            count = word_counts[index]
            for old_pair in pairwise(old_word):
                pair_counts[old_pair] -= count
                changed_pairs.add(old_pair)
            for new_pair in pairwise(new_word):
                pair_counts[new_pair] += count
                words_with_pair[new_pair].add(index)
                changed_pairs.add(new_pair)
            words[index] = new_word
        for changed in changed_pairs:
            if pair_counts[changed] > 0:
                heapq.heappush(heap, (-pair_counts[changed], changed))
            else:
                del pair_counts[changed]
    return merges


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::bpe_encode_chunk
def bpe_encode_chunk(chunk, ranks):
    """Token ids of one pre-tokenized chunk (bytes), merging as tiktoken does.

    `ranks` maps each token's bytes to its id, and ids follow the order in
    which training learned the tokens. Start from single bytes; repeatedly
    join the neighbouring pair whose joined bytes form the lowest-ranked
    token (the leftmost such pair on a tie), until no neighbouring pair
    forms a token. A chunk that is a token as a whole (" the") is returned
    at once, exactly like tiktoken does.
    """
    if chunk in ranks:
        return [ranks[chunk]]
    parts = [chunk[i:i + 1] for i in range(len(chunk))]
    # pair_ranks[i] is the rank of the token parts[i] + parts[i + 1] (or
    # infinity if that is no token). After a merge only the two pairs next to
    # it change, so the others are not looked up again.
    pair_ranks = [ranks.get(left + right, NO_TOKEN) for left, right in pairwise(parts)]
    while pair_ranks:
        best_rank = min(pair_ranks)
        if best_rank == NO_TOKEN:
            break
        i = pair_ranks.index(best_rank)  # the leftmost pair with that rank
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], NO_TOKEN)
        if i < len(parts) - 1:
            pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], NO_TOKEN)
    return [ranks[part] for part in parts]


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::split_on_special_tokens
def split_on_special_tokens(text, special_tokens):
    """Split `text` around special tokens: [text, special, text, special, ..., text].

    The pieces at even positions are ordinary text (possibly empty), those
    at odd positions are special tokens. Longer tokens are tried first, so
    one special token that contains another is still found whole.
    """
    if not special_tokens:
        return [text]
    alternatives = "|".join(
        regex.escape(token) for token in sorted(special_tokens, key=len, reverse=True)
    )
    return regex.split(f"({alternatives})", text)


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::ByteLevelBPETokenizer
class ByteLevelBPETokenizer:
    """A byte-level BPE tokenizer with the book's interface.

    The book's attributes:
    - `vocab`: id -> token text. Ordinary tokens are written with GPT-2's
      byte-to-character table (a space shows as "Ġ"), exactly as GPT-2's
      `encoder.json` writes them; special tokens as themselves.
    - `inverse_vocab`: token text -> id.
    - `bpe_merges`: (left id, right id) -> id of the merged token, in the
      order training learned them.

    Ids 0..255 are the single bytes and merge k creates id 256 + k, so a
    token's id is also its rank (learning order). Special tokens such as
    "<|endoftext|>" come after the merges; they are never produced by
    merging, only by `encode(..., allowed_special=...)`. Underneath, the
    tokenizer works on bytes: `token_bytes` (id -> bytes of an ordinary
    token), `ranks` (bytes -> id) and `special_tokens` (text -> id).
    """

    # Results of bpe_encode_chunk are remembered per chunk, up to this many
    # chunks (then the memory is cleared and refilled).
    max_cache_size = 100_000

    def __init__(self):
        # Untrained: just the 256 single bytes.
        self._set_state({i: bytes([i]) for i in range(256)}, [], {})

    def _set_state(self, token_bytes, merges, special_tokens):
        """Install ordinary tokens, merges (pairs in learning order) and special tokens."""
        self.token_bytes = dict(token_bytes)
        merges = [tuple(pair) for pair in merges]
        self.special_tokens = dict(special_tokens)
        self._check_consistency(merges)
        first_new_id = len(self.token_bytes) - len(merges)
        self.bpe_merges = {pair: first_new_id + k for k, pair in enumerate(merges)}
        # bytes -> id. If two merges ever produce the same bytes, the earlier
        # (lower) id is the one the encoder uses.
        self.ranks = {}
        for token_id in sorted(self.token_bytes):
            self.ranks.setdefault(self.token_bytes[token_id], token_id)
        self.special_ids = {token_id: token for token, token_id in self.special_tokens.items()}

        byte_to_char = bytes_to_unicode()
        self.vocab = {
            token_id: "".join(byte_to_char[b] for b in token)
            for token_id, token in sorted(self.token_bytes.items())
        }
        self.vocab.update(sorted(self.special_ids.items()))
        self.inverse_vocab = {}
        for token_id, text in self.vocab.items():
            self.inverse_vocab.setdefault(text, token_id)
        self._cache = {}

    def _check_consistency(self, merges):
        """The ids below the merges are the 256 single bytes; merge k makes the next id."""
        first_new_id = len(self.token_bytes) - len(merges)
        base_tokens = {self.token_bytes.get(i) for i in range(first_new_id)}
        if base_tokens != {bytes([b]) for b in range(256)}:
            raise ValueError("the first ids of the vocabulary must be the 256 single bytes")
        for k, (left, right) in enumerate(merges):
            expected = self.token_bytes.get(first_new_id + k)
            if (expected is None or left not in self.token_bytes or right not in self.token_bytes
                    or self.token_bytes[left] + self.token_bytes[right] != expected):
                raise ValueError(f"merge {k} ({left}, {right}) does not match the vocabulary")
        taken = set(self.token_bytes).intersection(self.special_tokens.values())
        if taken:
            raise ValueError(f"special token ids {sorted(taken)} are also ordinary tokens")

    # ----- training -------------------------------------------------------

    def train(self, text, vocab_size, allowed_special=frozenset({GPT2_END_OF_TEXT})):
        """Learn a vocabulary of `vocab_size` tokens from `text`.

        The vocabulary is the 256 bytes, then the learned merges, then one id
        per special token in `allowed_special` (those strings are cut out of
        the training text instead of being merged). Training stops early if
        no pair is left to merge.
        """
        specials = sorted(allowed_special)
        num_merges = vocab_size - 256 - len(specials)
        if num_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(specials)}")
        chunk_counts = Counter()
        for piece in split_on_special_tokens(text, specials)[::2]:
            chunk_counts.update(SPLIT_REGEX.findall(piece))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        merges = learn_bpe_merges(words, list(chunk_counts.values()), num_merges)

        token_bytes = {i: bytes([i]) for i in range(256)}
        for new_id, (left, right) in enumerate(merges, start=256):
            token_bytes[new_id] = token_bytes[left] + token_bytes[right]
        special_tokens = {token: len(token_bytes) + i for i, token in enumerate(specials)}
        self._set_state(token_bytes, merges, special_tokens)

    # ----- encoding and decoding -----------------------------------------

    def encode_ordinary(self, text):
        """Text -> ids, treating special-token text like any other text."""
        ids = []
        for chunk in SPLIT_REGEX.findall(text):
            chunk_ids = self._cache.get(chunk)
            if chunk_ids is None:
                if len(self._cache) >= self.max_cache_size:
                    self.clear_cache()
                chunk_ids = bpe_encode_chunk(chunk.encode("utf-8"), self.ranks)
                self._cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def clear_cache(self):
        """Forget the remembered chunk encodings (to free memory, or to time encoding)."""
        self._cache.clear()

    def encode(self, text, allowed_special=None, disallowed_special="all"):
        """Text -> ids, with tiktoken's rules for special tokens.

        Special tokens in `allowed_special` (a set, or "all") become their
        single id. By default every other special token is disallowed, and
        finding one in the text raises `ValueError`: text from users should
        not be able to smuggle in an end-of-text marker by accident. Pass
        `disallowed_special=()` to encode such text as ordinary characters.
        """
        if allowed_special is None:
            allowed_special = set()
        elif allowed_special == "all":
            allowed_special = set(self.special_tokens)
        if disallowed_special == "all":
            disallowed_special = set(self.special_tokens) - set(allowed_special)
        for token in disallowed_special:
            if token in text:
                raise ValueError(
                    f"the text contains the special token {token!r}, which is not allowed. "
                    f"Pass allowed_special={{{token!r}}} to encode it as a special token, "
                    "or disallowed_special=() to encode it as ordinary text."
                )
        allowed = [token for token in allowed_special if token in self.special_tokens]
        ids = []
        for position, piece in enumerate(split_on_special_tokens(text, allowed)):
            if position % 2 == 1:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(self.encode_ordinary(piece))
        return ids

    def decode(self, token_ids):
        """Ids -> text. Bytes that do not form valid UTF-8 become '�'."""
        return self.decode_bytes(token_ids).decode("utf-8", errors="replace")

    def decode_bytes(self, token_ids):
        """Ids -> the raw bytes they stand for."""
        return b"".join(
            self.special_ids[i].encode("utf-8") if i in self.special_ids else self.token_bytes[i]
            for i in token_ids
        )

    # ----- saving and loading ---------------------------------------------

    def save_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """Write `vocab` and `bpe_merges` as two JSON files, laid out as the book's.

        The vocabulary file maps each id to its token text (`vocab`); the
        merges file is a list of {"pair": [left, right], "new_id": id}, in
        learning order. The token texts use GPT-2's byte table, so every
        token, even part of a multi-byte character, is valid JSON text.
        """
        write_json_atomically(vocab_path, {str(i): text for i, text in self.vocab.items()})
        write_json_atomically(bpe_merges_path, [
            {"pair": list(pair), "new_id": new_id} for pair, new_id in self.bpe_merges.items()
        ])

    def load_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """Load what `save_vocab_and_merges` wrote (replacing this tokenizer's state).

        Ids that are neither one of the 256 bytes nor made by a merge are the
        special tokens. Loading checks that every merge produces its token.
        """
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        vocab = {int(token_id): text for token_id, text in vocab.items()}
        merges = json.loads(Path(bpe_merges_path).read_text(encoding="utf-8"))
        merges = sorted(merges, key=lambda merge: merge["new_id"])
        ordinary_ids = set(range(256)) | {merge["new_id"] for merge in merges}
        char_to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
        try:
            token_bytes = {
                token_id: bytes(char_to_byte[char] for char in text)
                for token_id, text in vocab.items() if token_id in ordinary_ids
            }
        except KeyError as error:
            raise ValueError(
                f"{vocab_path}: {error} is not a character of GPT-2's byte table"
            ) from error
        special_tokens = {text: token_id for token_id, text in vocab.items()
                          if token_id not in ordinary_ids}
        self._set_state(token_bytes, [merge["pair"] for merge in merges], special_tokens)

    def load_vocab_and_merges_from_openai(self, vocab_path, bpe_merges_path):
        """Load OpenAI's GPT-2 `encoder.json` (token -> id) and `vocab.bpe` (merges).

        GPT-2's only special token is "<|endoftext|>" (id 50256). The merges
        file holds pairs of token strings, one pair per line after a version
        comment; they are turned into pairs of ids here.
        """
        char_to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
        encoder = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        special_tokens = {GPT2_END_OF_TEXT: encoder.pop(GPT2_END_OF_TEXT)}
        token_bytes = {
            token_id: bytes(char_to_byte[char] for char in text)
            for text, token_id in encoder.items()
        }
        lines = Path(bpe_merges_path).read_text(encoding="utf-8").splitlines()
        merges = [
            tuple(encoder[part] for part in line.split()) for line in lines[1:] if line
        ]
        self._set_state(token_bytes, merges, special_tokens)


# Copied from ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb::BPETokenizerSimple
class BPETokenizerSimple:
    """The book's character-level BPE tokenizer: the book's vocabulary, merges and ids.

    - Training text: each space becomes "Ġ", the book's space marker (a space
      at the very start is dropped, as in the book).
    - Base vocabulary: the characters chr(0) to chr(255), then every other
      character of the processed text in sorted order ("Ġ" always among them),
      then the special tokens of `allowed_special`; the merges come after.
    - Training merges the most frequent neighbouring pair of the whole text
      (on a tie, the pair seen first) until there are `vocab_size` tokens;
      there is no pre-tokenization, so a merge may cross a word boundary.
    - Encoding cuts the text at newlines and whitespace, writes every word
      but the text's first as "Ġ" + word, and merges inside each word.
      Decoding turns "Ġ" back into a space. Runs of spaces or tabs come back
      as one space: unlike `ByteLevelBPETokenizer`, this one is not lossless.

    `load_vocab_and_merges_from_openai` loads GPT-2's files into a
    `ByteLevelBPETokenizer`, and `encode`/`decode` then hand the work to it,
    so with GPT-2's vocabulary the ids are exactly tiktoken's.
    """

    def __init__(self):
        self.vocab = {}          # id -> token text
        self.inverse_vocab = {}  # token text -> id
        self.bpe_merges = {}     # (left id, right id) -> id of the merged token
        self.byte_level = None   # a ByteLevelBPETokenizer once GPT-2's files are loaded

    def train(self, text, vocab_size, allowed_special=frozenset({GPT2_END_OF_TEXT})):
        """Learn merges on `text` until the vocabulary has `vocab_size` tokens."""
        processed = (text[1:] if text.startswith(" ") else text).replace(" ", "Ġ")
        base = [chr(i) for i in range(256)]
        base += [char for char in sorted(set(processed) | {"Ġ"}) if char not in base]
        vocab = dict(enumerate(base))
        for token in sorted(allowed_special):
            vocab[len(vocab)] = token
        self._set_state(vocab, {})
        token_ids = [self.inverse_vocab[char] for char in processed]
        for new_id in range(len(self.vocab), vocab_size):
            pair_counts = Counter(pairwise(token_ids))
            if not pair_counts:
                break  # one token left: nothing to merge
            pair = max(pair_counts, key=pair_counts.get)  # the first seen wins a tie
            token_ids = merge_adjacent_pair(token_ids, pair, new_id)
            self.bpe_merges[pair] = new_id
            self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]
            self.inverse_vocab[self.vocab[new_id]] = new_id

    def _set_state(self, vocab, bpe_merges):
        self.vocab = dict(vocab)
        self.inverse_vocab = {token: token_id for token_id, token in self.vocab.items()}
        self.bpe_merges = dict(bpe_merges)
        self.byte_level = None

    def encode(self, text, allowed_special=None):
        """Text -> ids; the special tokens in `allowed_special` become their own id."""
        if self.byte_level is not None:
            return self.byte_level.encode(text, allowed_special=allowed_special)
        allowed = sorted(allowed_special or (), key=len, reverse=True)
        pieces = split_on_special_tokens(text, allowed) if allowed else [text]
        if allowed:  # as in the book, other special tokens are refused only then
            for token in self.inverse_vocab:
                if (token.startswith("<|") and token.endswith("|>") and token not in allowed
                        and any(token in piece for piece in pieces[::2])):
                    raise ValueError(f"the text contains the special token {token!r}, "
                                     "which is not in allowed_special")
        ids = []
        for position, piece in enumerate(pieces):
            if position % 2 == 1:
                if piece not in self.inverse_vocab:
                    raise ValueError(f"the special token {piece!r} is not in the vocabulary")
                ids.append(self.inverse_vocab[piece])
            else:
                for word in self._words(piece):
                    ids.extend(self._encode_word(word))
        return ids

    @staticmethod
    def _words(text):
        """The book's split: "\\n" on its own, every word but the first prefixed with "Ġ"."""
        words = []
        for line_number, line in enumerate(text.split("\n")):
            if line_number > 0:
                words.append("\n")
            for word_number, word in enumerate(line.split()):
                first_of_text = line_number == 0 and word_number == 0
                words.append(word if first_of_text else "Ġ" + word)
        return words

    def _encode_word(self, word):
        """A known word is one id; otherwise merge its characters' ids, as the book does.

        Each pass walks left to right and merges every neighbouring pair that is a
        learned merge (whatever its rank); passes repeat until nothing changes.
        """
        if word in self.inverse_vocab:
            return [self.inverse_vocab[word]]
        missing = sorted({char for char in word if char not in self.inverse_vocab})
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing}")
        ids = [self.inverse_vocab[char] for char in word]
        merged_any = True
        while merged_any and len(ids) > 1:
            merged_any, merged, i = False, [], 0
            while i < len(ids):
                pair = tuple(ids[i:i + 2])
                if pair in self.bpe_merges:
                    merged.append(self.bpe_merges[pair])
                    merged_any, i = True, i + 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        return ids

    def decode(self, token_ids):
        """Ids -> text: "Ġ" becomes a space, and a newline gets a space before it."""
        if self.byte_level is not None:
            return self.byte_level.decode(token_ids)
        text = ""
        for token_id in token_ids:
            if token_id not in self.vocab:
                raise ValueError(f"token id {token_id} is not in the vocabulary")
            token = self.vocab[token_id]
            if token == "\n" and text and not text.endswith(" "):
                text += " "
            text += " " + token[1:] if token.startswith("Ġ") else token
        return text

    def save_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """Write `vocab` and `bpe_merges` as JSON, laid out as the book lays them out."""
        write_json_atomically(vocab_path, {str(i): text for i, text in self.vocab.items()})
        write_json_atomically(bpe_merges_path, [
            {"pair": list(pair), "new_id": new_id} for pair, new_id in self.bpe_merges.items()
        ])

    def load_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """Load what `save_vocab_and_merges` wrote (replacing this tokenizer's state)."""
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        merges = json.loads(Path(bpe_merges_path).read_text(encoding="utf-8"))
        self._set_state({int(token_id): text for token_id, text in vocab.items()},
                        {tuple(merge["pair"]): merge["new_id"] for merge in merges})

    def load_vocab_and_merges_from_openai(self, vocab_path, bpe_merges_path):
        """Load GPT-2's `encoder.json` and `vocab.bpe`; encoding then equals tiktoken's."""
        byte_level = ByteLevelBPETokenizer()
        byte_level.load_vocab_and_merges_from_openai(vocab_path, bpe_merges_path)
        self._set_state(byte_level.vocab, byte_level.bpe_merges)
        self.byte_level = byte_level


# Copied from ch07/01_main-chapter-code/ch07.ipynb::write_json_atomically
def write_json_atomically(path, data):
    """Write JSON all at once (downloads.atomic_write): never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(data, f, ensure_ascii=False)

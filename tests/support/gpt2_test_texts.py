"""Text that stresses GPT-2 tokenizers, shared by the tokenizer tests.

Hypothesis mixes random characters with pieces that exercise GPT-2's
pre-tokenizer: contractions, runs of spaces, digits, non-ASCII whitespace,
combining marks, and the end-of-text token whole and in halves.
"""

from hypothesis import strategies as st

EOT = "<|endoftext|>"

TRICKY_PIECES = [
    EOT, "<|endoftext", "|>", " ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000",
    "\x1c", "\x85", "'s", "'ll", "'S", " 't", "123", " 4567", "Hello", " world", "é",
    "ñ", "😀", "中文", "ß", "\u0301",
]

# Characters assigned in Python's Unicode database only: tiktoken's regex engine and the
# `regex` package may ship newer Unicode tables, and a code point assigned only there
# (e.g. U+323B0, a letter since Unicode 15) is a letter to one and punctuation to the
# other, so the two pre-tokenizers would legitimately split it differently.
assigned_characters = st.characters(exclude_categories=("Cs", "Cn"))

texts_with_tricky_pieces = st.lists(
    st.one_of(st.text(assigned_characters, max_size=10), st.sampled_from(TRICKY_PIECES)),
    max_size=10,
).map("".join)

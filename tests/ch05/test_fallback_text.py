"""The original text that chapter 5 trains on when the-verdict.txt is out of reach."""

import os
from pathlib import Path

import pytest
import tiktoken
from support.course_imports import REPO_ROOT, import_course_module

FALLBACK = REPO_ROOT / "ch05/01_main-chapter-code/fallback-text.txt"
downloads = import_course_module("ch02/01_main-chapter-code/downloads.py")


def test_is_plain_prose_of_about_twenty_thousand_characters():
    text = FALLBACK.read_text(encoding="utf-8")

    assert 18_000 <= len(text) <= 24_000
    assert text.isascii()
    assert text.endswith("\n") and not text.startswith(("#", "Title", "Copyright", "License"))


def test_is_long_enough_for_a_training_and_validation_split():
    # Chapter 5 holds out 10% of the tokens for validation and needs at least
    # one window of 256 tokens (its context length) plus the shifted target.
    downloads.cache_gpt2_tokenizer_files()
    tokens = tiktoken.get_encoding("gpt2").encode(FALLBACK.read_text(encoding="utf-8"))

    assert len(tokens) // 10 > 257


@pytest.mark.needs_mirror("the-verdict.txt")
def test_shares_no_sentence_with_the_verdict():
    """The fallback is our own writing, not a copy of the text it replaces."""
    mirror = Path(os.environ[downloads.MIRROR_ENV_VAR], "the-verdict.txt")
    verdict_sentences = {s.strip() for s in mirror.read_text(encoding="utf-8").split(".")}
    ours = {s.strip() for s in FALLBACK.read_text(encoding="utf-8").split(".")}
    shared = {s for s in verdict_sentences & ours if len(s) > 30}
    assert shared == set()

"""Fixtures for the chapter 2 tests: the story, GPT-2's tokenizer, and the
tokenizer code that lives in the chapter notebook."""

import json

import pytest
import tiktoken
from support.course_imports import import_course_module, notebook_definitions

MAIN_FOLDER = "ch02/01_main-chapter-code"
VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
INSTRUCTIONS_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch07/01_main-chapter-code/instruction-data.json"
)
INSTRUCTIONS_SHA256 = "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"


@pytest.fixture(scope="session")
def ch02_notebook():
    """split_into_tokens, SimpleTokenizerV1 and SimpleTokenizerV2 from ch02.ipynb."""
    names = ["split_into_tokens", "SimpleTokenizerV1", "SimpleTokenizerV2"]
    return notebook_definitions(f"{MAIN_FOLDER}/ch02.ipynb", names)


@pytest.fixture(scope="session")
def the_verdict(tmp_path_factory):
    """The text of the-verdict.txt, fetched by the chapter's download helper."""
    downloads = import_course_module(f"{MAIN_FOLDER}/downloads.py")
    destination = tmp_path_factory.mktemp("data") / "the-verdict.txt"
    path = downloads.download_file(VERDICT_URL, destination, sha256=VERDICT_SHA256)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def instruction_records(tmp_path_factory):
    """Chapter 7's instruction dataset: a list of instruction/input/output dicts."""
    downloads = import_course_module(f"{MAIN_FOLDER}/downloads.py")
    destination = tmp_path_factory.mktemp("data") / "instruction-data.json"
    path = downloads.download_file(INSTRUCTIONS_URL, destination, sha256=INSTRUCTIONS_SHA256)
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    downloads = import_course_module(f"{MAIN_FOLDER}/downloads.py")
    downloads.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="session")
def gpt():
    """The canonical chapter 2-4 code (GPTDatasetV1, create_dataloader_v1, ...)."""
    return import_course_module("ch04/01_main-chapter-code/gpt.py")


@pytest.fixture(scope="session")
def verdict_vocab(ch02_notebook, the_verdict):
    """The chapter's vocabulary with the two special tokens appended, as in 2.4."""
    tokens = sorted(set(ch02_notebook.split_into_tokens(the_verdict)))
    tokens.extend(["<|endoftext|>", "<|unk|>"])
    return {token: integer for integer, token in enumerate(tokens)}

"""Fixtures for the chapter 7 tests: the chapter's modules, tokenizer and data."""

import pytest
from support.course_imports import import_course_module

MAIN_FOLDER = "ch07/01_main-chapter-code"


@pytest.fixture(scope="session")
def ch07():
    """gpt_instruction_finetuning.py: the chapter's definitions, as the script has them."""
    return import_course_module(f"{MAIN_FOLDER}/gpt_instruction_finetuning.py")


@pytest.fixture(scope="session")
def exercises():
    return import_course_module(f"{MAIN_FOLDER}/exercise_experiments.py")


@pytest.fixture(scope="session")
def previous():
    return import_course_module(f"{MAIN_FOLDER}/previous_chapters.py")


@pytest.fixture(scope="session")
def tokenizer():
    import tiktoken

    import_course_module(f"{MAIN_FOLDER}/downloads.py").cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="session")
def instruction_data(ch07, tmp_path_factory):
    """The 1,100 entries, fetched by the chapter's own download function."""
    path = tmp_path_factory.mktemp("ch07-data") / "instruction-data.json"
    return ch07.download_and_load_file(path, ch07.INSTRUCTION_DATA_URL,
                                       sha256=ch07.INSTRUCTION_DATA_SHA256)

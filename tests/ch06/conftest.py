"""Shared fixtures for chapter 6: the script module, the data splits, a tokenizer."""


import pytest
import tiktoken
from course_imports import import_course_module

SCRIPT_PATH = "ch06/01_main-chapter-code/gpt_class_finetune.py"


@pytest.fixture(scope="session")
def ch06():
    """gpt_class_finetune.py, whose chapter-6 functions are copies of ch06.ipynb's."""
    return import_course_module(SCRIPT_PATH)


@pytest.fixture(scope="session")
def previous_chapters():
    return import_course_module("ch06/01_main-chapter-code/previous_chapters.py")


@pytest.fixture(scope="session")
def tokenizer():
    downloads = import_course_module("ch06/01_main-chapter-code/downloads.py")
    downloads.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, ch06, needs_mirror):
    """The SMS Spam Collection from the mirror, extracted, with the three CSV splits."""
    folder = tmp_path_factory.mktemp("sms")
    data_file = ch06.download_and_unzip_spam_data(
        ch06.SMS_SPAM_URL, folder / "sms_spam_collection.zip", folder,
        folder / "SMSSpamCollection.tsv")
    ch06.write_splits(data_file, folder)
    return folder


@pytest.fixture(autouse=True)
def one_torch_thread(single_thread_torch):
    """Every test here runs its tiny models on one thread (see `single_thread_torch`)."""

"""Shared fixtures for chapter 6: the script module, the data splits, a tokenizer."""

import os

import pytest
import tiktoken
import torch
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
def data_dir(tmp_path_factory, ch06):
    """The SMS Spam Collection from the mirror, extracted, with the three CSV splits."""
    if not os.environ.get("LLMS_FROM_SCRATCH_MIRROR"):
        pytest.skip("needs sms+spam+collection.zip from $LLMS_FROM_SCRATCH_MIRROR")
    folder = tmp_path_factory.mktemp("sms")
    data_file = ch06.download_and_unzip_spam_data(
        ch06.SMS_SPAM_URL, folder / "sms_spam_collection.zip", folder,
        folder / "SMSSpamCollection.tsv")
    ch06.write_splits(data_file, folder)
    return folder


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run this area's tiny models on one thread, then restore the setting.

    The models here are so small that torch's per-operation thread start-up
    costs more than it saves, and with `pytest -n 2` (or other jobs) on two
    cores, two threads per process only compete for the same cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared fixtures for chapter 6 and its bonus folders: the scripts, the data, a tokenizer.

Every test here runs its tiny models on one thread (`one_torch_thread`)."""


import pytest
import tiktoken
from support.course_imports import import_course_module
from support.synthetic_imdb import write_imdb_archive

SCRIPT_PATH = "ch06/01_main-chapter-code/gpt_class_finetune.py"
EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
IMDB = "ch06/03_bonus_imdb-classification"


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


@pytest.fixture(scope="session")
def experiments():
    return import_course_module(EXPERIMENTS)


@pytest.fixture(scope="session")
def imdb_prepare():
    return import_course_module(f"{IMDB}/download_prepare_dataset.py")


@pytest.fixture(scope="session")
def sms_data_dir(tmp_path_factory, needs_mirror):
    """One --data-dir for the SMS runs: the first run downloads and splits, the others reuse it."""
    return tmp_path_factory.mktemp("sms")


@pytest.fixture
def imdb_mirror(tmp_path, monkeypatch):
    """A mirror folder serving a synthetic aclImdb_v1.tar.gz (built by `make(**kwargs)`)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("LLMS_FROM_SCRATCH_MIRROR", str(mirror))

    def make(**kwargs):
        return write_imdb_archive(mirror / "aclImdb_v1.tar.gz", **kwargs)

    return make


@pytest.fixture(scope="session")
def imdb_data_dir(tmp_path_factory, imdb_prepare):
    """train/validation/test CSVs (40/20/40 reviews) prepared from a synthetic archive."""
    folder = tmp_path_factory.mktemp("imdb")
    archive = write_imdb_archive(folder / "aclImdb_v1.tar.gz")
    reviews = imdb_prepare.read_reviews(imdb_prepare.extract_reviews(archive, folder))
    for name, rows in zip(imdb_prepare.SPLIT_NAMES,
                          imdb_prepare.balanced_splits(reviews, (40, 20, 40)), strict=True):
        imdb_prepare.write_csv(rows, folder / f"{name}.csv")
    return folder

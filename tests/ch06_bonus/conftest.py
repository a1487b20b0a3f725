"""Shared fixtures for the chapter 6 bonus folders: the scripts, the data, one torch thread."""


import pytest
import torch
from course_imports import import_course_module
from synthetic_imdb import write_imdb_archive

EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
IMDB = "ch06/03_bonus_imdb-classification"


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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread (and two test workers share two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

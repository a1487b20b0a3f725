"""Shared fixtures for the chapter 6 bonus folders: the scripts, the data, one torch thread."""

import io
import os
import random
import tarfile

import pytest
import torch
from course_imports import import_course_module

EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
IMDB = "ch06/03_bonus_imdb-classification"

# Words that make the synthetic reviews separable, and neutral filler around them.
POSITIVE_WORDS = ("wonderful", "brilliant", "moving", "superb", "delightful")
NEGATIVE_WORDS = ("awful", "boring", "dreadful", "clumsy", "tedious")
FILLER = ("the", "film", "plot", "actor", "scene", "story", "was", "and", "its", "ending")


@pytest.fixture(scope="session")
def experiments():
    return import_course_module(EXPERIMENTS)


@pytest.fixture(scope="session")
def imdb_prepare():
    return import_course_module(f"{IMDB}/download_prepare_dataset.py")


@pytest.fixture(scope="session")
def sms_data_dir(tmp_path_factory, experiments):
    """The SMS Spam Collection from the mirror, split as chapter 6 does."""
    if not os.environ.get("LLMS_FROM_SCRATCH_MIRROR"):
        pytest.skip("needs sms+spam+collection.zip from $LLMS_FROM_SCRATCH_MIRROR")
    folder = tmp_path_factory.mktemp("sms")
    data_file = experiments.download_and_unzip_spam_data(
        experiments.SMS_SPAM_URL, folder / "sms_spam_collection.zip", folder,
        folder / "SMSSpamCollection.tsv")
    experiments.write_splits(data_file, folder)
    return folder


def synthetic_review(rng, positive):
    """A short review whose sentiment words give its label away."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
    for _ in range(2):
        words.insert(rng.randrange(len(words)), rng.choice(
            POSITIVE_WORDS if positive else NEGATIVE_WORDS))
    return " ".join(words).capitalize() + "."


def add_file(archive, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), linkname
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write_imdb_archive(path, per_folder=30, extra=()):
    """A .tar.gz in aclImdb_v1's layout: {train,test}/{pos,neg}/<id>_<rating>.txt.

    Also the unlabelled reviews and the side files the real archive has (they
    must be skipped), and the (name, data, kind, linkname) members in `extra`.
    """
    rng = random.Random(0)
    with tarfile.open(path, "w:gz") as archive:
        add_file(archive, "aclImdb/README", b"Large Movie Review Dataset v1.0\n")
        add_file(archive, "aclImdb/imdb.vocab", b"the\nfilm\n")
        for split in ("train", "test"):
            add_file(archive, f"aclImdb/{split}/urls_pos.txt", b"http://www.imdb.com/\n")
            for label in ("pos", "neg"):
                for i in range(per_folder):
                    rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                    text = synthetic_review(rng, label == "pos").encode()
                    add_file(archive, f"aclImdb/{split}/{label}/{i}_{rating}.txt", text)
        add_file(archive, "aclImdb/train/unsup/0_0.txt", b"An unlabelled review.")
        for name, data, kind, linkname in extra:
            add_file(archive, name, data, kind, linkname)
    return path


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

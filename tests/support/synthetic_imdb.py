"""A small archive in the exact layout of the Large Movie Review Dataset (aclImdb_v1.tar.gz)."""

import io
import random
import tarfile

# Words that make the synthetic reviews separable, and neutral filler around them.
POSITIVE_WORDS = ("wonderful", "brilliant", "moving", "superb", "delightful")
NEGATIVE_WORDS = ("awful", "boring", "dreadful", "clumsy", "tedious")
FILLER = ("the", "film", "plot", "actor", "scene", "story", "was", "and", "its", "ending")


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

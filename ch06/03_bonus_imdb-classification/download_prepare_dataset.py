"""Download the Large Movie Review Dataset (IMDB) and split it into three CSV files.

    python download_prepare_dataset.py                      # 35,000 / 5,000 / 10,000 reviews
    python download_prepare_dataset.py --train-size 2000 --validation-size 500 --test-size 1000

The archive (Maas et al., 2011: 50,000 labelled movie reviews, half positive,
half negative, plus 50,000 unlabelled ones we do not use) comes through the
course's download helper (or from the folder named by $LLMS_FROM_SCRATCH_MIRROR).
Its labelled reviews are extracted to --data-dir/aclImdb, shuffled with a fixed
seed and written to train.csv, validation.csv and test.csv (columns text and
label; 1 = positive, 0 = negative), each with as many positive as negative
reviews. The original train/test division is not kept: like the book, we pool
all 50,000 reviews and cut our own splits, so a validation set exists too.

Extraction is careful: every member of the archive is checked before anything
is written, and an absolute path, a path leading out of the target folder
(`../`), a link or a device file makes the script stop without extracting.
"""

import argparse
import csv
import gzip
import os
import random
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from downloads import DownloadError, atomic_write, download_file, sigterm_raises
from script_helpers import ScriptArgumentParser, non_negative_int

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_FOLDER = "aclImdb"
SPLIT_NAMES = ("train", "validation", "test")
LABELS = {"neg": 0, "pos": 1}
# 25,000 positive and 25,000 negative reviews in the full archive
REVIEWS_PER_LABEL = 25_000


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder, or is not a plain file."""


def member_problem(member):
    """Why extracting this tar member could be unsafe, or None when it is harmless."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("\\") or ":" in member.name.split("/")[0]:
        return "has an absolute path"
    if ".." in path.parts:
        return "would be written outside the target folder"
    if member.issym() or member.islnk():
        return "is a link"
    if not (member.isfile() or member.isdir()):
        return "is not a plain file or folder"
    return None


def is_labelled_review(name):
    """True for aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt."""
    parts = PurePosixPath(name).parts
    return (len(parts) == 4 and parts[0] == IMDB_FOLDER and parts[1] in ("train", "test")
            and parts[2] in LABELS and parts[3].endswith(".txt"))


def extract_reviews(archive_path, target_dir):
    """Extract the labelled reviews of `archive_path` into `target_dir`/aclImdb.

    Everything goes into a temporary folder first, which is renamed only when
    the whole archive was read and every member passed `member_problem`: a
    damaged or hostile archive leaves nothing behind. Raises ValueError with
    a one-line reason.
    """
    target_dir = Path(target_dir)
    final = target_dir / IMDB_FOLDER
    staging = Path(tempfile.mkdtemp(dir=target_dir, prefix=".aclImdb."))
    try:
        with sigterm_raises(), tarfile.open(archive_path, "r:*") as archive:
            for member in archive:
                problem = member_problem(member)
                if problem:
                    raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} {problem}; "
                                             "refusing to extract this archive")
                if member.isfile() and is_labelled_review(member.name):
                    destination = staging / member.name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with archive.extractfile(member) as source, open(destination, "wb") as out:
                        shutil.copyfileobj(source, out)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / IMDB_FOLDER, final)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{archive_path} is not a readable .tar.gz archive ({err}); "
                         "delete it and run again to download it afresh") from None
    except FileNotFoundError:
        raise ValueError(f"{archive_path} holds no {IMDB_FOLDER}/ folder of reviews") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def read_reviews(imdb_dir):
    """{label: [review texts]} from aclImdb/{train,test}/{pos,neg}/*.txt, in file-name order."""
    reviews = {}
    for label_name, label in LABELS.items():
        files = sorted(Path(imdb_dir).glob(f"*/{label_name}/*.txt"))
        reviews[label] = [path.read_text(encoding="utf-8") for path in files]
    return reviews


def balanced_splits(reviews, sizes, seed=123):
    """Split {label: texts} into lists of (text, label), each half positive, half negative.

    Each label's reviews are shuffled with `seed` and dealt out in turn, so the
    splits never share a review; then each split is shuffled, so the labels
    are mixed.
    """
    rng = random.Random(seed)
    shuffled = {label: rng.sample(texts, len(texts)) for label, texts in sorted(reviews.items())}
    needed = sum(sizes) // 2
    for label, texts in shuffled.items():
        if len(texts) < needed:
            raise ValueError(f"the archive holds {len(texts):,} reviews labelled {label}; "
                             f"the requested splits need {needed:,}")
    splits, start = [], 0
    for size in sizes:
        rows = [(text, label) for label, texts in shuffled.items()
                for text in texts[start:start + size // 2]]
        rng.shuffle(rows)
        splits.append(rows)
        start += size // 2
    return splits


def write_csv(rows, path):
    """Write (text, label) rows to `path` with a text,label header, atomically."""
    path = Path(path)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("text", "label"))
        writer.writerows(rows)


def read_split(path):
    """(texts, labels) from one of the CSV files (columns text and label, any capitalisation).

    The SMS spam splits of chapter 6 (Text, Label) read the same way.
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header = [name.lower() for name in rows[0]] if rows else []
    if "text" not in header or "label" not in header:
        raise ValueError(f"{path} lacks the columns text and label")
    text_col, label_col = header.index("text"), header.index("label")
    return [row[text_col] for row in rows[1:]], [int(row[label_col]) for row in rows[1:]]


def split_paths(data_dir, parser=None):
    """The three CSV paths in `data_dir`; with `parser`, a missing one is a usage error."""
    paths = [Path(data_dir) / f"{name}.csv" for name in SPLIT_NAMES]
    missing = [path.name for path in paths if not path.is_file()]
    if missing and parser is not None:
        parser.error(f"argument --data-dir: {data_dir} has no {', '.join(missing)}; "
                     "run download_prepare_dataset.py first")
    return paths


def even_positive(text):
    """A split size: a positive even number (half positive, half negative reviews)."""
    value = non_negative_int(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"must be a positive even number, got {text}")
    return value


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = ScriptArgumentParser(
        description="Download the IMDB movie reviews and write balanced train/validation/test "
                    "CSV files.")
    parser.add_argument("--data-dir", default="imdb_data",
                        help="where the archive is downloaded and the CSV files are written")
    parser.add_argument("--train-size", type=even_positive, default=35_000,
                        help="reviews in train.csv")
    parser.add_argument("--validation-size", type=even_positive, default=5_000,
                        help="reviews in validation.csv")
    parser.add_argument("--test-size", type=even_positive, default=10_000,
                        help="reviews in test.csv")
    parser.add_argument("--seed", type=int, default=123, help="seed for the shuffling")
    settings = vars(parser.parse_args(argv))
    total = settings["train_size"] + settings["validation_size"] + settings["test_size"]
    if total > 2 * REVIEWS_PER_LABEL:
        parser.error(f"argument --train-size: the three splits ask for {total:,} reviews; "
                     f"the archive has {2 * REVIEWS_PER_LABEL:,}")
    data_dir = Path(settings["data_dir"])
    if data_dir.exists() and not (data_dir.is_dir() and os.access(data_dir, os.W_OK)):
        parser.error(f"argument --data-dir: {data_dir} is not a writable folder")
    return settings


def main(settings):
    """Download, extract and split as `settings` (parse_args's dict) says."""
    data_dir = Path(settings["data_dir"])
    sizes = (settings["train_size"], settings["validation_size"], settings["test_size"])
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        archive = download_file(IMDB_URL, data_dir / "aclImdb_v1.tar.gz")
        print(f"Extracting the labelled reviews of {archive} ...")
        reviews = read_reviews(extract_reviews(archive, data_dir))
        print(f"Found {len(reviews[1]):,} positive and {len(reviews[0]):,} negative reviews")
        for name, rows in zip(SPLIT_NAMES, balanced_splits(reviews, sizes, settings["seed"]),
                              strict=True):
            write_csv(rows, data_dir / f"{name}.csv")
            print(f"Wrote {len(rows):,} reviews to {data_dir / f'{name}.csv'}")
    except DownloadError as err:
        raise SystemExit(f"{Path(__file__).name}: error: {err}") from None
    except (ValueError, OSError) as err:
        raise SystemExit(f"{Path(__file__).name}: error: {str(err).splitlines()[0]}") from None


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()

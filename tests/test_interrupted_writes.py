"""Every result writer of the chapter 5-7 scripts, interrupted and under umask 022.

One table: each row is a function a script uses to write a result (a
checkpoint, a plot, a CSV, a JSON file, an index), and how to call it on a
path. Each is checked for what `downloads.atomic_write` promises:

- a real SIGTERM or SIGINT, sent while the data is being written (from inside
  the flush to disk), leaves the earlier good file byte for byte and no
  temporary file;
- under umask 022 a new result is 0644, as with a plain `open()`, and an
  existing result keeps its mode (an append must not turn 0644 into 0600).
"""

import csv
import os
import shutil
import signal
import tarfile

import matplotlib
import pytest
import torch
from support.course_imports import import_course_module

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Linear(2, 2)


def save_checkpoint(module):
    return lambda path: import_course_module(module).save_checkpoint(path, tiny_model())


def save_plot(path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    import_course_module("ch06/01_main-chapter-code/gpt_class_finetune.py").save_plot(fig, path)


def hparam_results(path):
    search = import_course_module("ch05/05_bonus_hparam_tuning/hparam_search.py")
    row = {**{name: values[0] for name, values in search.DEFAULT_GRID.items()},
           "best_val_loss": 6.0, "final_train_loss": 6.5, "seconds": 1.0}
    search.write_results(path, [row])


def write_json(module):
    return lambda path: import_course_module(module).write_json_atomically(path, [{"a": 1}])


def append_experiment(path):
    experiments = import_course_module(
        "ch06/02_bonus_additional-experiments/additional_experiments.py")
    experiments.append_result(path, dict.fromkeys(experiments.EXPERIMENT_FIELDS, "1"))


def imdb_csv(path):
    prepare = import_course_module("ch06/03_bonus_imdb-classification/download_prepare_dataset.py")
    prepare.write_csv([("a good film", 1), ("a bad film", 0)], path)


def spam_splits(path):
    """write_splits writes train/validation/test.csv; `path` is the train.csv."""
    script = import_course_module("ch06/01_main-chapter-code/gpt_class_finetune.py")
    tsv = path.parent.parent / "SMSSpamCollection.tsv"
    tsv.write_text("".join(f"{label}\tmessage {i}\n" for i in range(10)
                           for label in ("ham", "spam")))
    script.write_splits(tsv, path.parent)


def gutenberg_index(path):
    prepare = import_course_module("ch05/03_bonus_pretraining_on_gutenberg/prepare_dataset.py")
    prepare.ShardWriter(path.parent, [], 10, "fingerprint").write_index()


def gutenberg_log(path):
    training = import_course_module(
        "ch05/03_bonus_pretraining_on_gutenberg/pretraining_simple.py")
    if not path.exists():
        path.write_text('{"step": 0, "loss": 9.0, "tokens_seen": 40}\n'
                        '{"step": 1, "loss": 8.0, "tokens_seen": 80}\n')
    training.StepLog(path.parent, training.Cluster()).keep_until(0)


WRITERS = [
    # (what, file name, writer(path))
    ("ch05 save_checkpoint", "model.pth",
     save_checkpoint("ch05/01_main-chapter-code/gpt_utils.py")),
    ("ch06 save_checkpoint", "review_classifier.pth",
     save_checkpoint("ch06/01_main-chapter-code/previous_chapters.py")),
    ("ch07 save_checkpoint", "gpt2-medium355M-sft.pth",
     save_checkpoint("ch07/01_main-chapter-code/previous_chapters.py")),
    ("ch06 loss plot", "loss-plot.pdf", save_plot),
    ("ch06 SMS splits", "train.csv", spam_splits),
    ("ch05 hparam results", "hparam_results.csv", hparam_results),
    ("ch07 answers JSON", "instruction-data-with-response.json",
     write_json("ch07/01_main-chapter-code/gpt_instruction_finetuning.py")),
    ("ch07 judge scores JSON", "scores.json", write_json("ch07/03_model-evaluation/llm_client.py")),
    ("ch06 experiments CSV (append)", "results.csv", append_experiment),
    ("IMDB CSV", "train.csv", imdb_csv),
    ("Gutenberg index.json", "index.json", gutenberg_index),
    ("Gutenberg log.jsonl", "log.jsonl", gutenberg_log),
]
IDS = [what for what, _, _ in WRITERS]


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def files_in(folder):
    return sorted(path.name for path in folder.iterdir())


def write_and_get_signal(write, path, signum, during=(os, "fsync")):
    """In a forked child (a crash must not take pytest along): write `path`, with
    `signum` sent to the child from inside `during` (module, function name: the
    flush to disk by default). Returns the exit status: 0 when the signal
    surfaced as an exception the child could handle."""
    pid = os.fork()
    if pid == 0:  # the child
        module, name = during
        real_function = getattr(module, name)

        def signal_mid_write(*args, **kwargs):
            os.kill(os.getpid(), signum)  # delivered before this returns, as from `kill`
            return real_function(*args, **kwargs)

        setattr(module, name, signal_mid_write)
        try:
            write(path)
        except (SystemExit, KeyboardInterrupt):
            os._exit(0)
        except BaseException:  # noqa: BLE001 (any other outcome is a failure)
            os._exit(3)
        os._exit(4)  # the signal went unnoticed
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize(("what", "name", "write"), WRITERS, ids=IDS)
def test_a_signal_during_the_write_keeps_the_earlier_result(what, name, write, signum, folder):
    write(folder / name)  # the earlier good result
    earlier = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert write_and_get_signal(write, folder / name, signum) == 0  # not killed mid-write
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == earlier


@pytest.mark.parametrize(("what", "name", "write"), WRITERS, ids=IDS)
def test_results_get_the_mode_a_plain_open_gives_under_umask_022(what, name, write, folder):
    umask = os.umask(0o022)
    try:
        write(folder / name)
        modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
        assert set(modes.values()) == {0o644}, modes
        write(folder / name)  # again, onto the file of the first run (append or replace)
        assert (folder / name).stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
    if name.endswith(".csv"):
        with open(folder / name, newline="") as f:
            assert len(list(csv.reader(f))) >= 2  # a header and rows


def test_sigterm_while_extracting_imdb_leaves_no_staging_folder(tmp_path):
    prepare = import_course_module("ch06/03_bonus_imdb-classification/download_prepare_dataset.py")
    review = tmp_path / "1_10.txt"
    review.write_text("A fine film.")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(review, arcname="aclImdb/train/pos/1_10.txt")
    target = tmp_path / "imdb"
    target.mkdir()

    status = write_and_get_signal(lambda path: prepare.extract_reviews(archive, path), target,
                                  signal.SIGTERM, during=(shutil, "copyfileobj"))

    assert status == 0  # not killed mid-extraction
    assert files_in(target) == []

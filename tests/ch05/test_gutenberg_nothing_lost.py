"""Gutenberg scripts: the book repository's command lines, plain .txt folders, and
resuming from what an interruption leaves (a cut-short checkpoint, half a log
line, a damaged index.json)."""

import json
import random

import pytest
from support.course_imports import import_course_module

# The tiny settings and log readers of the main Gutenberg training tests.
_training_tests = import_course_module("tests/ch05/test_gutenberg_training.py")
TINY, WORDS = _training_tests.TINY, _training_tests.WORDS
read_log, step_losses = _training_tests.read_log, _training_tests.step_losses

FOLDER = "ch05/03_bonus_pretraining_on_gutenberg"

# The trainer's torchrun error handler wants a real stderr; pytest's capture has none.
pytestmark = pytest.mark.filterwarnings("ignore:Unable to enable fault handler")


@pytest.fixture(scope="module")
def training():
    return import_course_module(f"{FOLDER}/pretraining_simple.py")


@pytest.fixture(scope="module")
def prepare():
    return import_course_module(f"{FOLDER}/prepare_dataset.py")


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """Two plain .txt books of seeded English-like words (about 300 tokens)."""
    folder = tmp_path_factory.mktemp("books")
    rng = random.Random(1)
    for number in range(2):
        (folder / f"book{number}.txt").write_text(
            " ".join(rng.choice(WORDS) for _ in range(150)) + ".\n")
    return folder


@pytest.mark.parametrize(("flags", "debug"), [
    (["--debug"], True), (["--debug", "true"], True), (["--debug", "True"], True),
    (["--debug", "false"], False), ([], False),
])
def test_debug_accepts_the_book_repositorys_true_and_false(training, books, tmp_path,
                                                           flags, debug):
    _, settings = training.parse_args(["--data_dir", str(books), "--output_dir", str(tmp_path),
                                       "--batch-size", "1", *flags, "--n_epochs", "1"])
    assert settings["debug"] is debug


def test_test_only_failure_flags_are_not_in_help(training, capsys):
    with pytest.raises(SystemExit):
        training.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--fail-rank" not in help_text and "--fail-step" not in help_text
    assert "--debug" in help_text


def test_a_folder_of_plain_text_files_is_tokenized_into_a_cache_and_trained_on(
        training, prepare, books, tmp_path, capsys, single_thread_torch):
    output = tmp_path / "out"
    before = sorted(path.name for path in books.iterdir())
    training.main(["--data-dir", str(books), "--output-dir", str(output), *TINY,
                   "--eval-freq", "100", "--max-steps", "2"])
    out = capsys.readouterr().out
    assert f"tokenizing them into {output / 'tokens'}" in out
    assert sorted(path.name for path in books.iterdir()) == before  # the input is only read
    # The same memmap format prepare_dataset.py writes, with the same tokens.
    reference = prepare.tokenize_to_shards(books, tmp_path / "reference", 10**6, progress=False)
    cached = json.loads((output / "tokens" / "index.json").read_text())
    assert cached["total_tokens"] == reference["total_tokens"] > 0
    assert [(tmp_path / "reference" / s["file"]).read_bytes() for s in reference["shards"]] \
        == [(output / "tokens" / s["file"]).read_bytes() for s in cached["shards"]]
    assert sorted(step_losses(read_log(output))) == [0, 1]
    # Peak memory at the end: the book's GPU line on CUDA, peak RSS on a CPU.
    assert "Peak memory (RSS) of this process:" in out.splitlines()[-1]


def test_peak_memory_on_cuda_is_the_books_line(training, monkeypatch, capsys):
    monkeypatch.setattr(training.torch.cuda, "max_memory_allocated", lambda device: 3.25e9)
    training.report_peak_memory(training.torch.device("cuda", 0))
    assert capsys.readouterr().out == "Maximum GPU memory allocated: 3.25 GB\n"


@pytest.fixture(scope="module")
def finished_run(training, books, tmp_path_factory):
    """Steps 0-5 of a tiny run with a checkpoint every 2 steps (model_pg_1, 3, 5)."""
    shards = tmp_path_factory.mktemp("shards")
    import_course_module(f"{FOLDER}/prepare_dataset.py").tokenize_to_shards(
        books, shards, shard_tokens=120, progress=False)
    output = tmp_path_factory.mktemp("run")
    common = ["--data-dir", str(shards), *TINY, "--eval-freq", "100", "--save-ckpt-freq", "2",
              "--n-epochs", "2", "--max-steps", "6"]
    training.main([*common, "--output-dir", str(output)])
    return common, output


def copy_run(source, target):
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_resume_skips_a_cut_short_newest_checkpoint_and_half_a_log_line(
        training, finished_run, tmp_path, capsys, single_thread_torch):
    common, finished = finished_run
    output = copy_run(finished, tmp_path / "interrupted")
    newest = output / "model_pg_5.pth"
    newest.write_bytes(newest.read_bytes()[:1000])  # a crash while it was written
    log = (output / "log.jsonl").read_text()
    (output / "log.jsonl").write_text(log + '{"step": 6, "lo')  # an append cut short
    capsys.readouterr()

    training.main([*common, "--output-dir", str(output), "--resume"])

    out = capsys.readouterr().out
    assert "model_pg_5.pth is damaged (cut short?)" in out
    assert "Resuming from model_pg_3.pth" in out
    assert "dropped 1 half-written line(s)" in out
    assert step_losses(read_log(output)) == step_losses(read_log(finished))


def test_resume_with_only_a_damaged_checkpoint_is_refused_naming_resume(
        training, finished_run, tmp_path, capsys):
    common, finished = finished_run
    output = tmp_path / "out"
    output.mkdir()
    (output / "model_pg_5.pth").write_bytes((finished / "model_pg_5.pth").read_bytes()[:500])
    with pytest.raises(SystemExit) as exit_info:
        training.parse_args([*common, "--output-dir", str(output), "--resume"])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error and "--resume" in error


def test_a_damaged_index_is_named_by_the_trainer_and_repaired_by_prepare(
        training, prepare, books, tmp_path, capsys):
    shards = tmp_path / "shards"
    prepare.tokenize_to_shards(books, shards, shard_tokens=120, progress=False)
    good = json.loads((shards / "index.json").read_text())
    text = (shards / "index.json").read_text()
    (shards / "index.json").write_text(text[:len(text) // 2])  # cut short

    with pytest.raises(SystemExit) as exit_info:
        training.parse_args(["--data-dir", str(shards), "--output-dir", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error
    assert "--data-dir" in error and "index.json is damaged" in error

    index = prepare.tokenize_to_shards(books, shards, shard_tokens=120, progress=False)
    assert "index.json is damaged" in capsys.readouterr().out
    assert index == good


def test_an_interrupted_shard_leaves_no_temporary_file(prepare, books, tmp_path,
                                                       monkeypatch):
    """Ctrl-C while a shard is being written: only whole files stay behind."""
    calls = []

    def interrupt_second_book(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_add_book(*args, **kwargs)

    real_add_book = prepare.ShardWriter.add_book
    monkeypatch.setattr(prepare.ShardWriter, "add_book",
                        lambda self, *a, **k: interrupt_second_book(self, *a, **k))
    with pytest.raises(KeyboardInterrupt):
        prepare.tokenize_to_shards(books, tmp_path, shard_tokens=10**6, progress=False)
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".part")]

"""Bad command lines of the chapter 4 and 5 scripts: exit 2, one line naming the flag.

Each case runs the script's command-line entry point in-process (the same
function `python script.py ...` calls) in an empty working folder, with every
output pointed into it, a user's model.pth planted there, and checks: status 2,
exactly one line on stderr that names the flag, no traceback, and no file
written or changed. A few cases also run as real subprocesses.
"""

import subprocess
import sys

import pytest
from course_imports import REPO_ROOT, import_course_module

CH04 = "ch04/01_main-chapter-code"
KV = "ch04/03_kv-cache"
CH05 = "ch05/01_main-chapter-code"

ENTRY_POINTS = {
    "gpt.py": (f"{CH04}/gpt.py", "parse_args"),
    "benchmark.py": (f"{KV}/benchmark.py", "main"),
    "gpt_train.py": (f"{CH05}/gpt_train.py", "run_from_command_line"),
    "gpt_generate.py": (f"{CH05}/gpt_generate.py", "main"),
    "bench_train.py": (f"{CH05}/bench_train.py", "main"),
}

# gpt_train.py writes only into these (relative to the working folder)
TRAIN_OUT = ["--output-dir", "out", "--data-dir", "data"]

# (script, arguments, the flag the message must name)
BAD_INPUT = [
    ("gpt.py", ["--prompt", ""], "--prompt"),
    ("gpt.py", ["--max-new-tokens", "-1"], "--max-new-tokens"),
    ("gpt.py", ["--max-new-tokens", "ten"], "--max-new-tokens"),
    ("gpt.py", ["--seed", "1.5"], "--seed"),
    ("benchmark.py", ["--prompt", ""], "--prompt"),
    ("benchmark.py", ["--repeats", "0"], "--repeats"),
    ("benchmark.py", ["--repeats", "-2"], "--repeats"),
    ("benchmark.py", ["--max-new-tokens", "0"], "--max-new-tokens"),
    ("benchmark.py", ["--n-heads", "5"], "--n-heads"),
    ("benchmark.py", ["--device", "tpu"], "--device"),
    ("gpt_train.py", ["--epochs", "0"], "--epochs"),
    ("gpt_train.py", ["--epochs", "-3"], "--epochs"),
    ("gpt_train.py", ["--epochs", "two"], "--epochs"),
    ("gpt_train.py", ["--batch-size", "0"], "--batch-size"),
    ("gpt_train.py", ["--lr", "-0.001"], "--lr"),
    ("gpt_train.py", ["--lr", "nan"], "--lr"),
    ("gpt_train.py", ["--weight-decay", "-1"], "--weight-decay"),
    ("gpt_train.py", ["--device", "tpu"], "--device"),
    ("gpt_train.py", ["--context-length", "2000"], "--context-length"),
    ("gpt_train.py", ["--context-length", "0"], "--context-length"),
    ("gpt_train.py", ["--eval-freq", "0"], "--eval-freq"),
    ("gpt_train.py", ["--eval-iter", "0"], "--eval-iter"),
    ("gpt_train.py", ["--start-context", ""], "--start-context"),
    ("gpt_train.py", ["--text-file", "missing.txt"], "--text-file"),
    ("gpt_train.py", ["--model-config", "1T"], "--model-config"),
    ("gpt_train.py", ["--output-dir", "model.pth/out"], "--output-dir"),
    ("gpt_generate.py", ["--prompt", ""], "--prompt"),
    ("gpt_generate.py", ["--max-new-tokens", "-1"], "--max-new-tokens"),
    ("gpt_generate.py", ["--temperature", "-0.5"], "--temperature"),
    ("gpt_generate.py", ["--top-k", "-1"], "--top-k"),
    ("gpt_generate.py", ["--device", "tpu"], "--device"),
    ("gpt_generate.py", ["--model-size", "2B"], "--model-size"),
    ("gpt_generate.py", ["--context-length", "0"], "--context-length"),
    ("gpt_generate.py", ["--checkpoint", "missing.pth"], "--checkpoint"),
    ("gpt_generate.py", ["--checkpoint", "notes.txt"], "--checkpoint"),
    ("bench_train.py", ["--epochs", "0"], "--epochs"),
    ("bench_train.py", ["--repeats", "0"], "--repeats"),
]


def snapshot(folder):
    """Every file under `folder` with its bytes: what a bad run must not change."""
    return {path.relative_to(folder): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """An empty working folder holding a user's model.pth and notes.txt."""
    (tmp_path / "model.pth").write_bytes(b"the user's trained model")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(script, args, capsys):
    module_path, entry = ENTRY_POINTS[script]
    module = import_course_module(module_path)
    if script == "gpt_train.py":
        args = [*TRAIN_OUT, *args]
    with pytest.raises(SystemExit) as excinfo:
        getattr(module, entry)(args)
    return excinfo.value.code, capsys.readouterr().err


@pytest.mark.parametrize("script, args, flag", BAD_INPUT,
                         ids=[f"{s} {' '.join(a) or repr('')}" for s, a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_naming_the_flag(
        script, args, flag, user_folder, capsys):
    before = snapshot(user_folder)
    code, stderr = one_line_error(script, args, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert flag in lines[0] and "error" in lines[0]
    assert "Traceback" not in stderr
    assert snapshot(user_folder) == before
    assert sorted(p.name for p in user_folder.iterdir()) == ["model.pth", "notes.txt"]


@pytest.mark.parametrize("script, args, flag", [
    ("gpt.py", ["--prompt", ""], "--prompt"),
    ("gpt_train.py", ["--epochs", "0", "--output-dir", "."], "--epochs"),
    ("gpt_generate.py", ["--prompt", ""], "--prompt"),
])
def test_bad_input_from_the_shell(script, args, flag, user_folder):
    """The same, as a reader runs it: a real process, its exit status and stderr."""
    folder = REPO_ROOT / ENTRY_POINTS[script][0].rsplit("/", 1)[0]
    before = snapshot(user_folder)
    result = subprocess.run([sys.executable, str(folder / script), *args], cwd=user_folder,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert snapshot(user_folder) == before  # --epochs 0 left the user's model.pth alone

"""Chapter 7's command lines, pasted as they are printed, reach each script's parse_args.

Two sources: the command lines of the book repository's READMEs (its spellings,
its script name `find-near-duplicates.py`), and every `python SCRIPT.py ...` line
in the code blocks of our own chapter 7 READMEs. Each runs in a fresh folder laid
out like the repository, holding the data files the commands name (copied from
the book's repository through the course's download helper, so the mirror
serves them offline).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from support.course_imports import REPO_ROOT, import_course_module

MAIN = "ch07/01_main-chapter-code"
UTILITIES = "ch07/02_dataset-utilities"
# The data a reader has beside the scripts: the chapter's download and the book's
# near-duplicate examples; the answers that the finetuning script writes are there
# for the judge (and not before finetuning: the script never replaces them).
FOLDER_FILES = {
    MAIN: ["instruction-data.json", "instruction-data-with-response.json"],
    UTILITIES: ["instruction-examples.json", "instruction-examples-modified.json"],
}
RESPONSES = "instruction-data-with-response.json"
BOOK_REPO_URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
# The book repository's names for our scripts
BOOK_SCRIPT_NAMES = {"find-near-duplicates.py": "find_near_duplicates.py"}

BOOK_README_COMMANDS = [
    (MAIN, "python gpt_instruction_finetuning.py"),
    (MAIN, "python gpt_instruction_finetuning.py --test_mode"),
    (MAIN, "python exercise_experiments.py"),
    (MAIN, "python exercise_experiments.py --exercise_solution baseline"),
    (MAIN, "python exercise_experiments.py --exercise_solution mask_instructions"),
    (MAIN, "python exercise_experiments.py --exercise_solution phi3_prompt"),
    (MAIN, "python exercise_experiments.py --exercise_solution alpaca_52k"),
    (MAIN, "python exercise_experiments.py --exercise_solution lora"),
    (MAIN, "python ollama_evaluate.py --file_path instruction-data-with-response.json"),
    (UTILITIES, "python find-near-duplicates.py --json_file instruction-examples.json"),
    (UTILITIES, "python find-near-duplicates.py --json_file instruction-examples.json "
                "--threshold 0.9 --remove_duplicates --json_output_file deduplicated.json"),
]


def readme_commands(folder):
    """Every `python SCRIPT.py ...` line in the fenced code blocks of FOLDER/README.md."""
    text = (REPO_ROOT / folder / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    return [(folder, line.strip()) for block in blocks for line in block.splitlines()
            if re.match(r"python [\w-]+\.py\b", line.strip())]


OUR_README_COMMANDS = readme_commands(MAIN) + readme_commands(UTILITIES)


@pytest.fixture(scope="module")
def book_files(tmp_path_factory):
    """{(folder, name): path} of the files FOLDER_FILES names, fetched once."""
    download_file = import_course_module(f"{MAIN}/downloads.py").download_file
    cache = tmp_path_factory.mktemp("ch07-book-files")
    return {(folder, name): download_file(f"{BOOK_REPO_URL}/{folder}/{name}",
                                          cache / folder / name)
            for folder, names in FOLDER_FILES.items() for name in names}


@pytest.fixture
def reader_folders(tmp_path, book_files):
    """tmp_path/<folder> for each chapter 7 folder, holding the files its commands name."""
    for (folder, name), path in book_files.items():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / folder / name)
    return tmp_path


def parse_pasted(folder, command, reader_folders, monkeypatch):
    """Hand the pasted command's arguments to its script's parse_args, run from `folder`."""
    words = shlex.split(command, comments=True)
    assert words[0] == "python"
    script = BOOK_SCRIPT_NAMES.get(words[1], words[1])
    module = import_course_module(f"{folder}/{script}")
    monkeypatch.chdir(reader_folders / folder)
    if script != "ollama_evaluate.py":
        (reader_folders / folder / RESPONSES).unlink(missing_ok=True)
    try:
        return module.parse_args(words[2:])
    except SystemExit as exit_:
        assert exit_.code == 0, f"{command!r} was refused"  # --help exits 0
        return None


def test_our_readmes_have_commands():
    scripts = {shlex.split(command, comments=True)[1] for _, command in OUR_README_COMMANDS}
    assert {"gpt_instruction_finetuning.py", "exercise_experiments.py", "ollama_evaluate.py",
            "find_near_duplicates.py"} <= scripts


@pytest.mark.parametrize(("folder", "command"), BOOK_README_COMMANDS + OUR_README_COMMANDS)
def test_pasted_command_line_is_accepted(folder, command, reader_folders, monkeypatch):
    parse_pasted(folder, command, reader_folders, monkeypatch)


def test_exercise_solution_defaults_to_the_baseline(reader_folders, monkeypatch):
    for command in ("python exercise_experiments.py",
                    "python exercise_experiments.py --exercise_solution baseline"):
        settings = parse_pasted(MAIN, command, reader_folders, monkeypatch)
        assert settings["exercise_solution"] == "baseline"


def test_book_near_duplicate_command_searches_every_text_field(reader_folders, monkeypatch):
    settings = parse_pasted(UTILITIES, "python find-near-duplicates.py --json_file "
                            "instruction-examples-modified.json", reader_folders, monkeypatch)
    assert settings["keys"] == ["instruction", "input", "output", "output_2"]


def test_readme_download_line_fetches_the_book_examples(tmp_path, book_files):
    """The README's `python -c` line gets both example files through the download helper."""
    text = (REPO_ROOT / UTILITIES / "README.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("python -c "))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / UTILITIES)}
    result = subprocess.run([sys.executable, *shlex.split(line)[1:]], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in FOLDER_FILES[UTILITIES]:
        assert (tmp_path / name).read_bytes() == book_files[UTILITIES, name].read_bytes()

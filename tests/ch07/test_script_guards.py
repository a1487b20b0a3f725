"""gpt_instruction_finetuning.py: a reader's data file is used as it is, and a run that
would train on 0 batches is refused before the model is loaded, naming the argument."""

import json

import pytest

ENTRY = {"instruction": "Say hi.", "input": "", "output": "Hi."}


def exit_line(capsys, function, args):
    with pytest.raises(SystemExit) as info:
        function(args)
    error = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in error, error
    return error


def test_a_batch_larger_than_the_training_entries_is_refused(ch07, tmp_path, capsys,
                                                             monkeypatch):
    data = tmp_path / "instruction-data.json"
    data.write_text(json.dumps([ENTRY] * 40))  # the reader's own file: 34 training entries
    monkeypatch.setattr(ch07, "load_model", lambda *args: pytest.fail("the model was loaded"))
    error = exit_line(capsys, ch07.run_from_command_line,
                      ["--test-mode", "--batch-size", "64", "--device", "cpu",
                       "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert "--batch-size" in error and "0 training batches" in error
    assert json.loads(data.read_text()) == [ENTRY] * 40  # used as it is, not replaced
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"instruction": "x"}', "json list"),
    (b'[{"instruction": "x"}]', "entry 0 needs"),
    (b'[{"instruction": "caf\xe9"}]', "utf-8"),
    (b"[" * 100_000, "recursion"),
    (json.dumps([ENTRY] * 3).encode(), "too few"),
])
def test_a_malformed_data_file_is_named_before_any_work(ch07, tmp_path, capsys, content,
                                                        problem):
    (tmp_path / "instruction-data.json").write_bytes(content)
    error = exit_line(capsys, ch07.run_from_command_line,
                      ["--test-mode", "--data-dir", str(tmp_path),
                       "--output-dir", str(tmp_path / "out")])
    assert "--data-dir" in error and problem in error.lower()

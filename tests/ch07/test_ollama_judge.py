"""The LLM judge against a real HTTP server on 127.0.0.1 that speaks Ollama's API.

The server (tests/support/llm_servers.py) answers GET /api/tags with a model list and POST
/api/chat with replies taken in turn from a script: text (200), an HTTP status, or a
delay. It records every request body, so the tests check what the client really sent.
"""

import hashlib
import json
import socket

import pytest
import requests
from support.llm_servers import FakeOllama

ENTRIES = [
    {"instruction": "Name a color.", "input": "", "output": "Blue.", "model_response": "Red."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "model_response": "5"},
    {"instruction": "Say hi.", "input": "", "output": "Hi!", "model_response": "Hello!"},
]


@pytest.fixture(scope="module")
def judge():
    from support.course_imports import import_course_module

    return import_course_module("ch07/01_main-chapter-code/ollama_evaluate.py")


@pytest.fixture
def responses_file(tmp_path):
    path = tmp_path / "instruction-data-with-response.json"
    path.write_text(json.dumps(ENTRIES))
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_request_body_and_reply(judge):
    with FakeOllama(["Llamas eat grass."]) as server:
        reply = judge.query_model("What do Llamas eat?", "llama3", f"{server.url}/api/chat")
    assert reply == "Llamas eat grass."
    assert server.bodies == [{
        "model": "llama3",
        "messages": [{"role": "user", "content": "What do Llamas eat?"}],
        "options": {"seed": 123, "temperature": 0, "num_ctx": 2048},
        "stream": False,
    }]


def test_scores_are_parsed_and_averaged(judge, responses_file, capsys):
    with FakeOllama(["85", "Score: 70.", "90/100"]) as server:
        status = judge.run_from_command_line(["--file", str(responses_file), "--host", server.url])
    out = capsys.readouterr().out
    assert status == 0
    assert "Number of scores: 3 of 3" in out
    assert "Average score: 81.67" in out  # (85 + 70 + 90) / 3
    prompt = server.bodies[1]["messages"][0]["content"]
    assert "### Input:\n2 and 3" in prompt and "correct output `5`" in prompt
    assert "score the model response `5`" in prompt and "integer number only" in prompt


def test_non_numeric_reply_is_reported_not_averaged_as_zero(judge, responses_file, capsys):
    with FakeOllama(["80", "The answer is quite good", "101"]) as server:
        status = judge.run_from_command_line(["--file_path", str(responses_file),
                                              "--host", server.url])
    out = capsys.readouterr().out
    assert status == 0
    assert "Number of scores: 1 of 3" in out
    assert "Unparsed (no usable number or a failed request): 2" in out
    assert "Average score: 80.00" in out


def test_generate_model_scores_keeps_none_for_unusable_replies(judge):
    with FakeOllama(["42", "n/a", "7"]) as server:
        scores = judge.generate_model_scores(ENTRIES, "model_response", "llama3",
                                             url=f"{server.url}/api/chat")
    assert scores == [42, None, 7]
    assert judge.summarize_scores(scores) == (24.5, 2, 3)


def test_http_500_is_retried_then_counted_as_unparsed(judge):
    with FakeOllama([500, "77", 500, 500, 500]) as server:
        scores = judge.generate_model_scores(ENTRIES[:2], "model_response", "llama3",
                                             url=f"{server.url}/api/chat", retries=2,
                                             backoff=0.01)
    assert scores == [77, None]  # one retry rescued the first; the second failed 3 times
    assert len(server.bodies) == 5


def test_slow_server_times_out_and_is_retried(judge):
    with FakeOllama([1.0, "88"]) as server:
        reply = judge.query_model("x", url=f"{server.url}/api/chat", timeout=0.3, retries=1,
                                  backoff=0.01)
        assert reply == "88"
        server.replies = [1.0, 1.0]
        with pytest.raises(requests.Timeout):
            judge.query_model("x", url=f"{server.url}/api/chat", timeout=0.3, retries=1,
                              backoff=0.01)


def test_server_down_gives_one_line_with_instructions(judge, responses_file, capsys):
    status = judge.run_from_command_line(["--file", str(responses_file), "--host",
                                          f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1
    assert "ollama serve" in err and "ollama pull llama3" in err


def test_missing_model_gives_one_line_with_instructions(judge, responses_file, capsys):
    with FakeOllama(models=["phi3:latest"]) as server:
        status = judge.run_from_command_line(["--file", str(responses_file), "--host", server.url])
        with pytest.raises(judge.OllamaError, match="ollama pull llama3"):
            judge.query_model("x", "llama3", f"{server.url}/api/chat")
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "ollama pull llama3" in err and "phi3:latest" in err
    assert len(server.bodies) == 1  # a missing model is not retried


def test_host_from_environment_and_ollama_spellings(judge, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5000")
    assert judge.ollama_base_url() == "http://127.0.0.1:5000"
    assert judge.ollama_base_url("0.0.0.0") == "http://127.0.0.1:11434"
    assert judge.ollama_base_url("https://example.org:8443/") == "https://example.org:8443"
    monkeypatch.delenv("OLLAMA_HOST")
    assert judge.ollama_base_url() == "http://localhost:11434"


def test_unreadable_file_exits_2_with_one_line(judge, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "x"}]))
    assert judge.run_from_command_line(["--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--file" in err


def test_parse_score(judge):
    assert [judge.parse_score(text) for text in ("85", " 85.\n", "Score: 9", "72.5", "90/100")] \
        == [85, 85, 9, 72.5, 90]
    assert [judge.parse_score(text) for text in ("", "eighty", "85 because", "-3", "250")] \
        == [None] * 5


def test_missing_responses_file_says_which_script_writes_it(judge, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.chdir(tmp_path)  # no instruction-data-with-response.json here
    with pytest.raises(SystemExit) as exit_info:
        judge.parse_args([])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "gpt_instruction_finetuning.py writes it" in err
    assert "--download-book-responses" in err


def test_book_responses_are_downloaded_and_scored(judge, tmp_path, monkeypatch, capsys):
    """The book's published answers (110 entries) arrive through the download helper."""
    book_file = tmp_path / "script-folder" / "instruction-data-with-response-book.json"
    monkeypatch.setattr(judge, "BOOK_RESPONSES_FILE", book_file)
    monkeypatch.chdir(tmp_path)
    with FakeOllama(default="60") as server:
        status = judge.run_from_command_line(["--download-book-responses", "--host", server.url])
    out = capsys.readouterr().out
    assert status == 0
    assert "Number of scores: 110 of 110" in out and "Average score: 60.00" in out
    assert hashlib.sha256(book_file.read_bytes()).hexdigest() == judge.BOOK_RESPONSES_SHA256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script-folder"]
    # the first entry's answer is the book's gpt2-medium's, sent to the judge
    assert "score the model response `The car is as fast as a bullet.`" in \
        server.bodies[0]["messages"][0]["content"]


def test_download_flag_and_file_exclude_each_other(judge, responses_file, capsys):
    with pytest.raises(SystemExit):
        judge.parse_args(["--download-book-responses", "--file", str(responses_file)])
    assert "--download-book-responses" in capsys.readouterr().err

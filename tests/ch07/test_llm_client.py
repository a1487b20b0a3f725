"""The chapter 7 bonus LLM client against real HTTP servers on 127.0.0.1.

tests/support/llm_servers.py starts servers that speak Ollama's and OpenAI's APIs and answer
from a script; they record every request, so these tests check the exact bodies the
client sends, how it parses the replies, how it copes with a server that is down,
slow, rate-limited (429), failing (500) or talking nonsense, that a long run resumes
where it stopped, and that the API key never shows up in output or files.
"""

import json
import socket

import openai
import pytest
import requests
from support.course_imports import import_course_module
from support.llm_servers import FakeOllama, FakeOpenAI

API_KEY = "sk-test-0123456789-do-not-print"
ENTRIES = [
    {"instruction": "Name a color.", "input": "", "output": "Blue.",
     "model 1 response": "Red.", "model 2 response": "Blue."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5",
     "model 1 response": "6", "model 2 response": "5"},
    {"instruction": "Say hi.", "input": "", "output": "Hi!",
     "model 1 response": "Hello!", "model 2 response": "Hi!"},
]
KEYS = ["model 1 response", "model 2 response"]


@pytest.fixture(scope="module")
def llm():
    return import_course_module("ch07/02_dataset-utilities/llm_client.py")


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return API_KEY


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ollama_raw_prompt_request_body(llm):
    template = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    with FakeOllama(["Explain photosynthesis."]) as server:
        reply = llm.query_ollama_raw(template, "llama3", f"{server.url}/api/generate",
                                     options={"seed": 7, "temperature": 1.0})
    assert reply == "Explain photosynthesis."
    assert server.bodies == [{"model": "llama3", "prompt": template, "raw": True,
                              "options": {"seed": 7, "temperature": 1.0}, "stream": False}]


def test_ollama_raw_retries_429_and_5xx_and_stops_on_missing_model(llm):
    with FakeOllama([429, 500, 503, "ok"], models=["llama3:latest"]) as server:
        url = f"{server.url}/api/generate"
        assert llm.query_ollama_raw("x", url=url, retries=3, backoff=0.01) == "ok"
        assert len(server.bodies) == 4
        server.replies = [500, 500]
        with pytest.raises(requests.HTTPError):
            llm.query_ollama_raw("x", url=url, retries=1, backoff=0.01)
        assert len(server.bodies) == 6
        with pytest.raises(llm.OllamaError, match="ollama pull phi3"):
            llm.query_ollama_raw("x", "phi3", url, retries=2, backoff=0.01)
        assert len(server.bodies) == 7  # not retried


def test_openai_request_body_headers_and_reply(llm, api_key):
    with FakeOpenAI(["Paris."], api_key=api_key) as server:
        client = llm.openai_client(base_url=server.url)
        assert llm.check_openai(client, "gpt-4o") == server.url
        reply = llm.query_openai(client, "Capital of France?", "gpt-4o",
                                 system="You are terse.")
    assert reply == "Paris."
    body = server.bodies[0]
    assert body["model"] == "gpt-4o" and body["seed"] == 123 and body["temperature"] == 0
    assert body["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "Capital of France?"}]
    assert server.headers[0]["authorization"] == f"Bearer {api_key}"


def test_openai_key_from_config_file(llm, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"OPENAI_API_KEY": API_KEY}))
    assert llm.openai_api_key(config) == API_KEY
    config.write_text(API_KEY)  # not JSON: the message must not quote it
    with pytest.raises(llm.OpenAIServerError) as error:
        llm.openai_api_key(config)
    assert API_KEY not in str(error.value)
    with pytest.raises(llm.OpenAIServerError, match="OPENAI_API_KEY"):
        llm.openai_api_key(tmp_path / "missing.json")


def test_openai_probe_tells_down_wrong_key_and_missing_model_apart(llm, api_key):
    client = llm.openai_client(base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(llm.OpenAIServerError, match="No server answers"):
        llm.check_openai(client)
    with FakeOpenAI(api_key="sk-another-key", models=["gpt-4o"]) as server:
        with pytest.raises(llm.OpenAIServerError, match="refused the API key") as error:
            llm.check_openai(llm.openai_client(base_url=server.url))
        assert API_KEY not in str(error.value)
    with FakeOpenAI(api_key=api_key, models=["gpt-4o-mini"]) as server:
        with pytest.raises(llm.OpenAIServerError, match="gpt-4o-mini"):
            llm.check_openai(llm.openai_client(base_url=server.url), "gpt-4o")


def test_openai_retries_429_and_500_then_gives_up(llm, api_key):
    with FakeOpenAI([429, 500, "42"], api_key=api_key) as server:
        client = llm.openai_client(base_url=server.url, max_retries=2)
        assert llm.query_openai(client, "x") == "42"
        assert len(server.bodies) == 3
        server.replies = [500, 500, 500]
        with pytest.raises(openai.InternalServerError):
            llm.query_openai(client.with_options(max_retries=1), "x")
        assert len(server.bodies) == 5  # one try and one retry


def test_openai_slow_server_times_out_and_is_retried(llm, api_key):
    with FakeOpenAI([1.0, "88"], api_key=api_key) as server:
        client = llm.openai_client(base_url=server.url, timeout=0.3, max_retries=1)
        assert llm.query_openai(client, "x") == "88"
        server.replies = [1.0, 1.0]
        with pytest.raises(openai.APITimeoutError):
            llm.query_openai(client, "x")


def test_scores_parsed_averaged_and_unparsed_counted(llm, tmp_path, capsys):
    replies = ["40", "90", "Score: 20.", "The second answer is right", "55/100", "100"]
    output = tmp_path / "scores.json"
    with FakeOllama(replies) as server:
        def ask(prompt):
            return llm.query_model(prompt, "llama3", f"{server.url}/api/chat")

        results = llm.process_entries(
            ENTRIES, lambda entry: llm.score_responses(entry, KEYS, ask), output)
    assert [r["model 1 response score"] for r in results] == [40, 20, 55]
    assert [r["model 2 response score"] for r in results] == [90, None, 100]
    assert json.loads(output.read_text()) == results
    llm.report_scores(results, KEYS)
    out = capsys.readouterr()
    assert "model 1 response: average score 38.33 (3 of 3 scored, 0 unparsed)" in out.out
    assert "model 2 response: average score 95.00 (2 of 3 scored, 1 unparsed)" in out.out
    assert "Could not read a score in the reply 'The second answer is right'" in out.err
    # the judge saw the reference answer and the response under each key
    second = server.bodies[3]["messages"][0]["content"]
    assert "### Input:\n2 and 3" in second and "correct output `5`" in second
    assert "score the model response `5`" in second
    assert server.bodies[3]["options"] == {"seed": 123, "temperature": 0, "num_ctx": 2048}


def test_interrupted_run_resumes_where_it_stopped(llm, api_key, tmp_path, capfd):
    output = tmp_path / "scores.json"
    with FakeOpenAI(["10", "20", "30", 500, 500], api_key=api_key) as server:
        client = llm.openai_client(base_url=server.url, max_retries=1)

        def work(entry):
            return llm.score_responses(entry, KEYS, lambda p: llm.query_openai(client, p))

        with pytest.raises(openai.InternalServerError):  # entry 2 fails after its retry
            llm.process_entries(ENTRIES, work, output)
        saved = json.loads(output.read_text())
        assert [r["model 1 response score"] for r in saved] == [10]
        assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]  # no temp files
        assert len(server.bodies) == 5

        server.replies = ["30", "40", "50", "60"]
        results = llm.process_entries(ENTRIES, work, output, resume=True)
    assert len(server.bodies) == 9  # entries 2 and 3 only: entry 1 was not asked again
    assert [(r["model 1 response score"], r["model 2 response score"]) for r in results] \
        == [(10, 20), (30, 40), (50, 60)]
    assert json.loads(output.read_text()) == results
    assert "Resuming after 1 finished entries" in capfd.readouterr().err
    # resume=False starts again; a file from a longer run is refused when resuming
    with pytest.raises(ValueError, match="belongs to another run"):
        llm.process_entries(ENTRIES[:2], work, output, resume=True)


def test_api_key_never_in_output_or_files(llm, api_key, tmp_path, capfd):
    output = tmp_path / "results.json"
    with FakeOpenAI(["fine", 429, "nonsense!", 500, "12"], api_key=api_key) as server:
        client = llm.openai_client(base_url=server.url, max_retries=2)
        print(client.base_url, llm.check_openai(client))

        def work(entry):
            return llm.score_responses(entry, KEYS[:1], lambda p: llm.query_openai(client, p))

        results = llm.process_entries(ENTRIES, work, output)
        assert [r["model 1 response score"] for r in results] == [None, None, 12]
        llm.report_scores(results, KEYS[:1])
    captured = capfd.readouterr()
    assert "1 of 3 scored, 2 unparsed" in captured.out
    files = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    for text in (captured.out, captured.err, files):
        assert API_KEY not in text and "sk-test" not in text


def test_clean_reply(llm):
    assert llm.clean_reply('  "The cake was eaten by me."\n') == "The cake was eaten by me."
    assert llm.clean_reply("It's fine.") == "It's fine."
    assert llm.clean_reply("  \n") is None and llm.clean_reply('""') is None


def test_ollama_server_down_is_one_clear_error(llm):
    with pytest.raises(llm.OllamaError, match="ollama serve"):
        llm.check_ollama("llama3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(requests.ConnectionError):
        llm.query_ollama_raw("x", url=f"http://127.0.0.1:{free_port()}/api/generate",
                             retries=1, backoff=0.01)

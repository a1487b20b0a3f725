# Copied from ch07/02_dataset-utilities/llm_client.py
"""Talking to LLMs over HTTP: a local Llama 3 through Ollama, or the OpenAI API.

The chapter 7 bonus notebooks send hundreds of requests, one or two per dataset
entry. This module holds what they share; its home is
ch07/02_dataset-utilities/llm_client.py and every bonus folder that talks to an
LLM has an identical copy (tools/copy_forward.py keeps them identical), so each
folder runs on its own.

- Ollama: chapter 7's client (`check_ollama`, `query_model`, `parse_score`, ...,
  copied unchanged from ch07.ipynb) plus `query_ollama_raw`, which sends a prompt
  with no chat template added (POST /api/generate with "raw": true).
- The OpenAI API through the official `openai` package. Its `base_url` (or the
  OPENAI_BASE_URL variable) points the same code at any server that speaks the
  API. The key comes from OPENAI_API_KEY or a git-ignored config.json and is never
  printed.
- `process_entries`: one unit of work per entry, a progress bar, the results saved
  after every entry (atomically), and `resume=True` to continue where an
  interrupted run stopped.

Every request asks for a fixed seed and temperature 0 unless told otherwise, so
a rerun gets the same answers (as far as the server honours the seed). Slow or
failing requests are retried with growing pauses: HTTP 429 (rate limit) and 5xx
(server trouble) are usually temporary.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import requests
from downloads import atomic_write, published_file
from tqdm import tqdm

# Copied from ch07/01_main-chapter-code/ch07.ipynb::DEFAULT_OLLAMA_HOST
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
# Copied from ch07/01_main-chapter-code/ch07.ipynb::JUDGE_OPTIONS
JUDGE_OPTIONS = {"seed": 123, "temperature": 0, "num_ctx": 2048}
OPENAI_OPTIONS = {"seed": 123, "temperature": 0}
OPENAI_CONFIG_FILE = "config.json"
# Chapter 7's instruction data, which several notebooks rewrite or extend
# Copied from ch07/01_main-chapter-code/ch07.ipynb::INSTRUCTION_DATA_URL
INSTRUCTION_DATA_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch07/01_main-chapter-code/instruction-data.json"
)
# Copied from ch07/01_main-chapter-code/ch07.ipynb::INSTRUCTION_DATA_SHA256
INSTRUCTION_DATA_SHA256 = "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"


# ---------------------------------------------------------------------------
# Chapter 7's Ollama client and judge (home: ch07/01_main-chapter-code/ch07.ipynb)
# ---------------------------------------------------------------------------

# Copied from ch07/01_main-chapter-code/ch07.ipynb::OllamaError
class OllamaError(RuntimeError):
    """The Ollama server could not be used at all (not running, model missing)."""


# Copied from ch07/01_main-chapter-code/ch07.ipynb::ollama_base_url
def ollama_base_url(host=None):
    """The server's base URL from `host`, else $OLLAMA_HOST, else localhost:11434.

    Accepts what Ollama itself accepts in OLLAMA_HOST: "localhost:11434",
    "0.0.0.0" (which means "this machine" for a client) or a full URL.
    """
    host = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST).strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    scheme, rest = host.split("://", 1)
    if not re.search(r":\d+$", rest.split("/")[0]):
        rest = rest.replace(rest.split("/")[0], rest.split("/")[0] + ":11434", 1)
    rest = rest.replace("0.0.0.0", "127.0.0.1", 1)
    return f"{scheme}://{rest}"


# Copied from ch07/01_main-chapter-code/ch07.ipynb::check_ollama
def check_ollama(model="llama3", host=None, timeout=5):
    """Make sure a server answers at `host` and has `model`; raise OllamaError if not.

    We ask the server itself (GET /api/tags lists the pulled models) instead
    of looking for an `ollama` process, which could not tell us its address
    or its models, and could be on another machine.
    """
    base_url = ollama_base_url(host)
    try:
        response = requests.get(f"{base_url}/api/tags", timeout=timeout)
        response.raise_for_status()
        pulled = [entry["name"] for entry in response.json().get("models", [])]
    except (requests.RequestException, ValueError, KeyError) as err:
        raise OllamaError(
            f"No Ollama server answers at {base_url} ({type(err).__name__}): start it with "
            f"`ollama serve` (and `ollama pull {model}` once), or pass its address with --host."
        ) from None
    # "llama3" means the tag "llama3:latest"
    if model not in pulled and f"{model}:latest" not in pulled:
        raise OllamaError(
            f"The Ollama server at {base_url} does not have the model {model!r}: "
            f"run `ollama pull {model}` (pulled: {', '.join(pulled) or 'none'})."
        )
    return base_url


# Copied from ch07/01_main-chapter-code/ch07.ipynb::query_model
def query_model(prompt, model="llama3", url="http://localhost:11434/api/chat", *,
                options=None, timeout=120, retries=3, backoff=2.0):
    """Send `prompt` to Ollama's chat endpoint at `url` and return the reply text.

    A slow server (timeout), a dropped connection or a server error (HTTP 5xx)
    is retried `retries` times, waiting `backoff`, 2 x `backoff`, ... seconds;
    then the last error is raised. A missing model (HTTP 404) raises
    OllamaError at once: retrying would not help.
    """
    data = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "options": dict(JUDGE_OPTIONS if options is None else options),
        "stream": False,
    }
    for attempt in range(retries + 1):
        try:
            response = requests.post(url, json=data, timeout=timeout)
            if response.status_code == 404:
                raise OllamaError(f"Ollama has no model {model!r}: run `ollama pull {model}`.")
            response.raise_for_status()
            return response.json()["message"]["content"]
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError):
            if attempt == retries:
                raise
            time.sleep(backoff * 2 ** attempt)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::parse_score
def parse_score(reply):
    """The score 0-100 in a judge's reply such as "85" or "85/100.", else None."""
    match = re.fullmatch(r"\s*(?:score:\s*)?(\d{1,3}(?:\.\d+)?)\s*(?:/\s*100)?\s*\.?\s*",
                         reply, flags=re.IGNORECASE)
    if match is None:
        return None
    score = float(match.group(1))
    if not 0 <= score <= 100:
        return None
    return int(score) if score.is_integer() else score


# Copied from ch07/01_main-chapter-code/ch07.ipynb::download_and_load_file
def download_and_load_file(file_path, url, sha256=None):
    """Fetch the JSON file at `url` into `file_path` once, then parse it.

    The course's download helper skips the download when the file is already
    there, copies it from $LLMS_FROM_SCRATCH_MIRROR when that folder holds it,
    and checks the file's SHA-256 when we know it. A file of that name that
    differs from the published one is the reader's own: used, never replaced.
    """
    published_file(url, file_path, sha256=sha256)
    with open(file_path, encoding="utf-8") as file:
        return json.load(file)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::format_input
def format_input(entry):
    """The Alpaca-style prompt for one entry: a preamble, the instruction, the input.

    The "### Input:" section appears only when the entry has an input. The
    answer ("\\n\\n### Response:\\n" and the output) is appended separately, so
    the same prompt serves for training texts and for asking the model.
    """
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


# Copied from ch07/01_main-chapter-code/ch07.ipynb::judge_prompt
def judge_prompt(entry, json_key):
    """Ask the judge to compare the answer under `json_key` with the dataset's output."""
    return (
        f"Given the input `{format_input(entry)}` "
        f"and correct output `{entry['output']}`, "
        f"score the model response `{entry[json_key]}`"
        " on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


# Copied from ch07/01_main-chapter-code/ch07.ipynb::summarize_scores
def summarize_scores(scores):
    """(average of the usable scores or None, number usable, number of entries)."""
    parsed = [score for score in scores if score is not None]
    average = sum(parsed) / len(parsed) if parsed else None
    return average, len(parsed), len(scores)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::write_json_atomically
def write_json_atomically(path, data):
    """Write JSON all at once (downloads.atomic_write): never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(data, f, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Ollama without the chat template
# ---------------------------------------------------------------------------

def query_ollama_raw(prompt, model="llama3", url="http://localhost:11434/api/generate", *,
                     options=None, timeout=120, retries=3, backoff=2.0):
    """Send `prompt` exactly as given to Ollama's generate endpoint; return the continuation.

    With "raw": true, Ollama does not wrap the prompt in the model's chat template,
    so we can write the template ourselves and stop it wherever we like (the
    dataset-generation notebook ends it right where the user's message would
    begin). Retries as `query_model` does.
    """
    data = {
        "model": model,
        "prompt": prompt,
        "raw": True,
        "options": dict(JUDGE_OPTIONS if options is None else options),
        "stream": False,
    }

    def send():
        response = requests.post(url, json=data, timeout=timeout)
        if response.status_code == 404:
            raise OllamaError(f"Ollama has no model {model!r}: run `ollama pull {model}`.")
        response.raise_for_status()
        return response.json()["response"]

    return call_with_retries(send, (requests.ConnectionError, requests.Timeout,
                                    requests.HTTPError), retries, backoff)


def call_with_retries(send, retry_on, retries=3, backoff=2.0):
    """`send()`, repeated after an error in `retry_on`: waits backoff, 2 x backoff, ..."""
    for attempt in range(retries + 1):
        try:
            return send()
        except retry_on:
            if attempt == retries:
                raise
            time.sleep(backoff * 2 ** attempt)


# ---------------------------------------------------------------------------
# The OpenAI API (or any server that speaks it)
# ---------------------------------------------------------------------------

class OpenAIServerError(RuntimeError):
    """The OpenAI-compatible server cannot be used (no key, not reachable, no model)."""


def openai_api_key(config_file=OPENAI_CONFIG_FILE):
    """The API key from $OPENAI_API_KEY, else from `config_file` ({"OPENAI_API_KEY": ...}).

    The key is a password: it is returned, never printed, and error messages
    never quote the file's content.
    """
    key = os.environ.get("OPENAI_API_KEY")
    path = Path(config_file)
    if not key and path.is_file():
        try:
            key = json.loads(path.read_text(encoding="utf-8")).get("OPENAI_API_KEY")
        except (ValueError, AttributeError):
            raise OpenAIServerError(f"{path} must be a JSON object with the key "
                                    "OPENAI_API_KEY") from None
    if not key:
        raise OpenAIServerError(
            f"No OpenAI API key: set the OPENAI_API_KEY environment variable or write "
            f'{{"OPENAI_API_KEY": "sk-..."}} into {path} (git ignores that file).')
    return key


def openai_client(base_url=None, config_file=OPENAI_CONFIG_FILE, timeout=60, max_retries=3):
    """An `openai.OpenAI` client with the key from `openai_api_key`.

    `base_url` None means $OPENAI_BASE_URL, else OpenAI's own server. The package
    retries timeouts, dropped connections, 429 and 5xx `max_retries` times with
    exponential backoff (and honours the server's Retry-After).
    """
    from openai import OpenAI

    return OpenAI(api_key=openai_api_key(config_file), base_url=base_url, timeout=timeout,
                  max_retries=max_retries)


def check_openai(client, model="gpt-4o", timeout=10):
    """Make sure the server answers, accepts the key and offers `model`; else raise.

    GET /v1/models is cheap and needs the key, so one request tells a missing
    server, a wrong key and a wrong model name apart before a long run starts.
    """
    import openai

    server = str(client.base_url).rstrip("/")
    try:
        available = [entry.id for entry in
                     client.with_options(max_retries=0, timeout=timeout).models.list()]
    except openai.AuthenticationError:
        raise OpenAIServerError(f"The server at {server} refused the API key (HTTP 401): "
                                "check OPENAI_API_KEY or config.json.") from None
    except openai.APIConnectionError as err:
        raise OpenAIServerError(f"No server answers at {server} ({type(err).__name__}): "
                                "check the network or the base URL.") from None
    except openai.APIStatusError as err:
        raise OpenAIServerError(f"The server at {server} answered HTTP {err.status_code} "
                                "when asked for its models.") from None
    if model not in available:
        raise OpenAIServerError(f"The server at {server} does not offer the model {model!r} "
                                f"(it offers: {', '.join(available[:10]) or 'none'}).")
    return server


def query_openai(client, prompt, model="gpt-4o", *, system=None, options=None):
    """Send `prompt` (after an optional system message) to chat completions; return the text.

    `options` defaults to seed 123 and temperature 0. A request that still fails
    after the client's retries raises the `openai` package's error.
    """
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    response = client.chat.completions.create(
        model=model, messages=messages, **(OPENAI_OPTIONS if options is None else options))
    return response.choices[0].message.content or ""


# ---------------------------------------------------------------------------
# Long runs: save as we go, resume after an interruption
# ---------------------------------------------------------------------------

def load_finished(output_file, entries, resume):
    """The results already in `output_file` when resuming, else an empty list."""
    path = Path(output_file)
    if not (resume and path.is_file()):
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        finished = json.loads(text)
    except ValueError:  # cut short (a copy, a crash of an older version): keep whole entries
        finished = whole_leading_items(text)
        print(f"{path} ends in a cut-short entry: resuming after its {len(finished)} "
              "whole entries", file=sys.stderr)
    if not isinstance(finished, list) or len(finished) > len(entries):
        raise ValueError(f"{path} holds {len(finished)} results but there are only "
                         f"{len(entries)} entries: it belongs to another run; "
                         "delete it or pass resume=False")
    return finished


def whole_leading_items(text):
    """The complete items at the start of a JSON list whose end is missing or broken."""
    decoder = json.JSONDecoder()
    items, position = [], text.find("[") + 1
    if position == 0:
        return items
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            item, position = decoder.raw_decode(text, position)
        except ValueError:
            return items
        items.append(item)


def process_entries(entries, work, output_file, *, resume=False, desc="Entries"):
    """Apply `work(entry)` to every entry in order, saving the results as they come.

    `work` returns the entry's result (a JSON-friendly value, usually the entry
    with new fields). After every entry the whole list of results is written to
    `output_file` atomically, so an interruption (a crash, Ctrl-C, a request that
    failed even after its retries) loses only the entry in flight. With
    resume=True, the results already in the file are kept and the run continues
    with the next entry; resume=False starts again from the first entry.
    """
    results = load_finished(output_file, entries, resume)
    if results:
        print(f"Resuming after {len(results)} finished entries in {output_file}",
              file=sys.stderr)
    for entry in tqdm(entries[len(results):], desc=desc, initial=len(results),
                      total=len(entries), file=sys.stderr):
        results.append(work(entry))
        write_json_atomically(output_file, results)
    return results


def count_missing(results, key):
    """How many results have no usable value (None or missing) under `key`."""
    return sum(result.get(key) is None for result in results)


def clean_reply(reply):
    """A model's text answer without surrounding blanks and quotes; None if empty.

    LLMs often wrap a rewritten sentence in quotes or add blank lines. An empty
    answer is not usable: None, so it is counted rather than kept as "".
    """
    text = reply.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text or None


# ---------------------------------------------------------------------------
# Judging responses (the evaluation notebooks)
# ---------------------------------------------------------------------------

def score_responses(entry, response_keys, ask):
    """The entry plus a score 0-100 (None if the reply has no usable number) per response.

    `ask(prompt)` sends a prompt to the judge and returns its reply, so the same
    code serves Ollama and the OpenAI API. The score of the response under
    "model 1 response" is stored under "model 1 response score".
    """
    scored = dict(entry)
    for key in response_keys:
        reply = ask(judge_prompt(entry, key))
        score = parse_score(reply)
        if score is None:
            print(f"Could not read a score in the reply {reply[:60]!r}", file=sys.stderr)
        scored[f"{key} score"] = score
    return scored


def report_scores(results, response_keys):
    """Print each response key's average score and how many replies could not be parsed."""
    for key in response_keys:
        average, n_parsed, n_total = summarize_scores([result.get(f"{key} score")
                                                       for result in results])
        text = "no usable scores" if average is None else f"{average:.2f}"
        print(f"{key}: average score {text} ({n_parsed} of {n_total} scored, "
              f"{n_total - n_parsed} unparsed)")

"""Score a finetuned model's answers with a local LLM judge served by Ollama.

    ollama serve                # in another terminal (https://ollama.com)
    ollama pull llama3          # once: the judge model (about 4.7 GB)
    python ollama_evaluate.py --file instruction-data-with-response.json
    python ollama_evaluate.py --download-book-responses   # the book's published answers
    python ollama_evaluate.py --help

For every entry of the JSON file (written by gpt_instruction_finetuning.py or
the chapter notebook) the judge compares the model's answer ("model_response")
with the dataset's answer ("output") and replies with a score from 0 to 100.
The script prints the average score and how many replies were a usable
number. A reply that is not a number, or a request that fails even after
retries, is counted as unparsed and reported; it never counts as a 0.

Without a finetuning run of your own, --download-book-responses scores the
answers of the book's finetuned GPT-2 355M, which the book's repository
publishes: the file is fetched through the course's download helper into this
folder as instruction-data-with-response-book.json (a name of its own, so it
never replaces a file the finetuning script wrote).

The client speaks Ollama's HTTP API (POST /api/chat, GET /api/tags) through
`requests`. It asks for seed 123, temperature 0 and a 2,048-token context, so
repeated runs give the same scores. The definitions below are copied unchanged
from the chapter notebook ch07.ipynb (their home).
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import requests
from downloads import DownloadError, download_file
from script_helpers import ScriptArgumentParser, existing_file, non_negative_int, positive_float
from tqdm import tqdm

# Copied from ch07/01_main-chapter-code/ch07.ipynb::DEFAULT_OLLAMA_HOST
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
# Copied from ch07/01_main-chapter-code/gpt_instruction_finetuning.py::RESPONSES_FILE
RESPONSES_FILE = "instruction-data-with-response.json"
BOOK_RESPONSES_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
                      "01_main-chapter-code/instruction-data-with-response.json")
BOOK_RESPONSES_SHA256 = "aced320504c77c98d957316eb9f3460945256226c36b5e9752bf7d49585eb943"
BOOK_RESPONSES_FILE = Path(__file__).resolve().parent / "instruction-data-with-response-book.json"
# Copied from ch07/01_main-chapter-code/ch07.ipynb::JUDGE_OPTIONS
JUDGE_OPTIONS = {"seed": 123, "temperature": 0, "num_ctx": 2048}


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


# Copied from ch07/01_main-chapter-code/ch07.ipynb::generate_model_scores
def generate_model_scores(json_data, json_key, model="llama3", url=None, **query_options):
    """Score every entry's answer under `json_key`; one result per entry.

    A result is the score (a number from 0 to 100), or None when the judge's
    reply was not a number or the request failed after its retries. Keeping
    None in the list, instead of dropping it or writing 0, means a reader
    cannot mistake a failed request for a bad answer: use `summarize_scores`.
    """
    url = url or f"{ollama_base_url()}/api/chat"
    scores = []
    for entry in tqdm(json_data, desc="Scoring entries", file=sys.stderr):
        try:
            reply = query_model(judge_prompt(entry, json_key), model, url, **query_options)
        except (requests.RequestException, ValueError, KeyError) as err:
            print(f"Request failed: {type(err).__name__}: {err}", file=sys.stderr)
            scores.append(None)
            continue
        score = parse_score(reply)
        if score is None:
            print(f"Could not read a score in the reply {reply[:60]!r}", file=sys.stderr)
        scores.append(score)
    return scores


# Copied from ch07/01_main-chapter-code/ch07.ipynb::summarize_scores
def summarize_scores(scores):
    """(average of the usable scores or None, number usable, number of entries)."""
    parsed = [score for score in scores if score is not None]
    average = sum(parsed) / len(parsed) if parsed else None
    return average, len(parsed), len(scores)


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    # the book repository's --file_path names our --file (--json_key needs no entry)
    parser = ScriptArgumentParser(
        description="Score a model's answers (the 'model_response' of each entry) with a "
                    "local Ollama model as the judge (chapter 7).",
        aliases={"--file_path": "--file"},
    )
    parser.add_argument("--file", type=existing_file, default=None,
                        help="JSON list of entries with instruction, input, output and the key "
                             f"(None: {RESPONSES_FILE}, written by gpt_instruction_finetuning.py)")
    parser.add_argument("--download-book-responses", action="store_true",
                        help="score the answers of the book's finetuned GPT-2 355M instead: "
                             "download the book's published file into this script's folder")
    parser.add_argument("--model", default="llama3", help="the Ollama model that judges")
    parser.add_argument("--host", default=None,
                        help=f"the Ollama server (None: $OLLAMA_HOST, else {DEFAULT_OLLAMA_HOST})")
    parser.add_argument("--json-key", default="model_response",
                        help="the key of the answers to score")
    parser.add_argument("--timeout", type=positive_float, default=120,
                        help="seconds to wait for one reply before retrying")
    parser.add_argument("--retries", type=non_negative_int, default=3, help="retries per entry")
    settings = vars(parser.parse_args(argv))
    if settings["download_book_responses"] and settings["file"] is not None:
        parser.error("argument --download-book-responses: scores the book's file; "
                     "leave out --file")
    if settings["file"] is None and not settings["download_book_responses"]:
        if not Path(RESPONSES_FILE).is_file():
            parser.error(f"argument --file: no {RESPONSES_FILE} here; "
                         "gpt_instruction_finetuning.py writes it (or pass "
                         "--download-book-responses to score the book's published answers)")
        settings["file"] = Path(RESPONSES_FILE)
    return settings


def book_responses_file():
    """The book's published answers, fetched once (or copied from the mirror)."""
    return download_file(BOOK_RESPONSES_URL, BOOK_RESPONSES_FILE, sha256=BOOK_RESPONSES_SHA256)


def load_entries(path, json_key):
    """Read the JSON list of entries at `path`; one line naming the problem if unusable."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"argument --file: cannot read JSON from {path} "
                         f"({type(err).__name__})") from None
    required = {"instruction", "output", json_key}
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and required <= entry.keys() for entry in entries):
        raise ValueError(f"argument --file: {path} must be a JSON list of entries with the "
                         f"keys {', '.join(sorted(required))}")
    return entries


def main(settings):
    """Score the answers as `settings` (parse_args's dict) says; return the exit status."""
    json_key, model = settings["json_key"], settings["model"]
    try:
        path = book_responses_file() if settings["download_book_responses"] else settings["file"]
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        entries = load_entries(path, json_key)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        base_url = check_ollama(model, settings["host"])
        scores = generate_model_scores(entries, json_key, model, url=f"{base_url}/api/chat",
                                       timeout=settings["timeout"], retries=settings["retries"])
    except OllamaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    average, n_parsed, n_total = summarize_scores(scores)
    print(f"Number of scores: {n_parsed} of {n_total}")
    if n_parsed < n_total:
        print(f"Unparsed (no usable number or a failed request): {n_total - n_parsed}")
    print("Average score: " + ("none (no usable scores)" if average is None
                               else f"{average:.2f}"))
    return 0 if n_parsed else 1


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it); return main's exit status."""
    return main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_from_command_line())

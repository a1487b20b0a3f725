"""Chapter 7: instruction data, batching with padding and masking, and an LLM judge.

Copied from the chapter's code (home: ch07/01_main-chapter-code/ch07.ipynb; the
judge from ollama_evaluate.py); `tools/copy_forward.py` keeps every definition
identical to its home. The judge talks to Ollama over HTTP (`query_model`).
"""

import json
import os
import re
import sys
import time

import requests
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .downloads import published_file


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


# Copied from ch07/01_main-chapter-code/ch07.ipynb::InstructionDataset
class InstructionDataset(Dataset):
    """Instruction entries as lists of token ids: prompt, "### Response:", answer.

    Every text is tokenized once here, not again in every epoch.
    """

    def __init__(self, data, tokenizer):
        self.data = data
        self.encoded_texts = []
        for entry in data:
            full_text = format_input(entry) + f"\n\n### Response:\n{entry['output']}"
            self.encoded_texts.append(tokenizer.encode(full_text))

    def __getitem__(self, index):
        return self.encoded_texts[index]

    def __len__(self):
        return len(self.data)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_draft_1
def custom_collate_draft_1(batch, pad_token_id=50256, device="cpu"):
    """First draft: pad every sequence of token ids to the same length.

    Each sequence gets at least one end-of-text token (50256, which also
    serves as padding); the batch is as long as its longest sequence.
    """
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst = []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs_lst.append(torch.tensor(padded[:-1]))  # drop the one extra token
    return torch.stack(inputs_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_draft_2
def custom_collate_draft_2(batch, pad_token_id=50256, device="cpu"):
    """Second draft: padded inputs and the targets, the inputs shifted by one."""
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst, targets_lst = [], []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs_lst.append(torch.tensor(padded[:-1]))
        targets_lst.append(torch.tensor(padded[1:]))  # the next token at each position
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_fn
def custom_collate_fn(batch, pad_token_id=50256, ignore_index=-100, allowed_max_length=None,
                      device="cpu"):
    """Final version: inputs and targets, padding after the first end-of-text ignored.

    The first end-of-text target stays, so the model learns to stop after its
    answer; the padding targets after it become `ignore_index`, which
    cross-entropy skips. We find the padding by position (everything after the
    sequence's own tokens), so a 50256 inside a text would still count.
    `allowed_max_length` truncates long sequences.
    """
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst, targets_lst = [], []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        # targets[len(item) - 1] is the first end-of-text token: keep it
        targets[len(item):] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::DEFAULT_OLLAMA_HOST
DEFAULT_OLLAMA_HOST = "http://localhost:11434"


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

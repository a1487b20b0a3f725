"""The local Hugging Face hub of the test suite: tiny random-weight repositories, real layout.

The course downloads with the real calls (`hf_hub_download`, `snapshot_download`,
`from_pretrained`) and the repository names readers use. The hub cannot be reached from
the machines that test the course (and Meta's and Google's repositories are gated), so the
suite serves stand-ins. Each model family's module in tests/support has a table
`HUB_REPOS` = {repo id: writer(folder)}; a writer puts the repository's files into the
folder (config.json, safetensors, shards with their index, tokenizer files, Meta's
consolidated.00.pth, ...) for a tiny model with seeded random weights. This module lays
them out as huggingface_hub caches a download (`models--org--name/refs/main` names a
commit, `snapshots/<commit>/` holds the files) and gives the environment under which a
process (a notebook's kernel, a script) finds them with HF_HUB_OFFLINE=1.

A notebook names the repositories it downloads from in its notebook_parameters.json entry:

    {"ch05/11_qwen3/standalone-qwen3.ipynb": {"hf_hub_repos": ["Qwen/Qwen3-0.6B"]}}

To run a notebook by hand against the same stand-ins (from the repository root):

    python - <<'EOF'
    import sys; sys.path.insert(0, "tests")
    from support.fake_hub import fake_hub_cache
    fake_hub_cache("stand-in-hub", ["Qwen/Qwen3-0.6B-Base"])
    EOF
    HF_HUB_CACHE="$PWD/stand-in-hub" HF_HUB_OFFLINE=1 jupyter lab

Writing a repository trains a tokenizer and builds a model (seconds each). The weights are
seeded, so each repository is written once per machine into the checkpoint cache and
copied from there; the cached folder's name carries a fingerprint of the writers' code and
of the library versions, so changing either writes it afresh.
"""

import hashlib
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where conftest.py keeps the random-weight OpenAI releases, for the same reason.
CHECKPOINT_CACHE = Path(tempfile.gettempdir()) / "llms-from-scratch-test-checkpoints"
# Course code a writer uses (GPT-2's from-scratch state dict comes from its converter).
COURSE_SOURCES = ("ch04/01_main-chapter-code/hf_conversion.py",)


def repo_writers():
    """{repo id: writer(folder)} for every repository the fake hub can serve."""
    from support import (gemma3_checkpoints, gemma4_checkpoints, llama_checkpoints,
                         olmo3_tiny_aya_checkpoints, openai_gpt2, qwen3_5_checkpoints,
                         qwen3_checkpoints)

    writers = {}
    for family in (openai_gpt2, llama_checkpoints, qwen3_checkpoints, gemma3_checkpoints,
                   olmo3_tiny_aya_checkpoints, qwen3_5_checkpoints, gemma4_checkpoints):
        writers.update(family.HUB_REPOS)
    return writers


def writers_fingerprint():
    """A short hash of the writers' code and the libraries that serialise the files."""
    import tokenizers
    import torch
    import transformers

    digest = hashlib.sha1()
    sources = sorted(Path(__file__).parent.glob("*.py")) + [REPO_ROOT / p for p in COURSE_SOURCES]
    for source in sources:
        digest.update(source.read_bytes())
    digest.update(f"{torch.__version__} {transformers.__version__} "
                  f"{tokenizers.__version__}".encode())
    return digest.hexdigest()[:12]


def cached_repo(repo_id):
    """The folder holding `repo_id`'s files, written on first use (once per machine).

    A fresh folder is written under a temporary name and renamed into place whole, so
    a half-written repository is never seen; the lock keeps parallel workers from
    writing the same one twice.
    """
    folder = CHECKPOINT_CACHE / "hub" / f"{repo_id.replace('/', '--')}-{writers_fingerprint()}"
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not folder.exists():
            fresh = Path(tempfile.mkdtemp(dir=folder.parent))
            try:
                repo_writers()[repo_id](fresh)
            except BaseException:
                shutil.rmtree(fresh)
                raise
            fresh.rename(folder)
    return folder


def write_hub_snapshot(cache_dir, repo_id, folder):
    """Serve the files of `folder` (subfolders included) as `repo_id` from `cache_dir`.

    `models--<org>--<name>/refs/main` names a commit and `snapshots/<commit>/` holds
    the files; with HF_HUB_OFFLINE=1, `hf_hub_download`, `snapshot_download` and
    `from_pretrained` find them there exactly as if they had been downloaded before.
    """
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    return snapshot


def fake_hub_cache(cache_dir, repo_ids):
    """Fill `cache_dir` (use it as HF_HUB_CACHE) with the tiny versions of `repo_ids`."""
    unknown = sorted(set(repo_ids) - set(repo_writers()))
    if unknown:
        raise KeyError(f"the fake hub has no writer for {unknown}; add one to a HUB_REPOS "
                       "table in tests/support")
    for repo_id in repo_ids:
        write_hub_snapshot(cache_dir, repo_id, cached_repo(repo_id))
    return Path(cache_dir)


def hub_environment(hf_home, repo_ids):
    """Environment variables under which a process finds `repo_ids` offline, and nothing else.

    A fresh HF_HOME (with its hub cache where huggingface_hub looks by default) keeps a
    reader's own cache and token out of the test.
    """
    hf_home = Path(hf_home)
    cache = fake_hub_cache(hf_home / "hub", repo_ids)
    return {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}

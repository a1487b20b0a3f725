"""gpt_generate.py end to end, run as a reader runs it (a subprocess).

OpenAI mode reads a small random Hugging Face GPT-2 written in OpenAI's
format from a mirror: its greedy continuation must be Hugging Face's.
Checkpoint mode reads a model saved the way gpt_train.py saves it: with a
seed and sampling settings, it must print what `generate` gives in-process.
"""

import os

import pytest
import tiktoken
import torch
from support.course_imports import import_course_module
from support.helpers import run_script, run_script_in_process, tiny_gpt_config
from support.openai_gpt2 import random_hf_gpt2, write_openai_gpt2_mirror

gpt_generate = import_course_module("ch05/01_main-chapter-code/gpt_generate.py")
gpt_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")

SMALL_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_layer": 2}
PROMPT = "Every effort moves you"


def run_gpt_generate(*args, mirror=None, offline=False):
    env = {k: v for k, v in os.environ.items() if k != "LLMS_FROM_SCRATCH_MIRROR"}
    env["PYTHONIOENCODING"] = "utf-8"
    if mirror is not None:
        env["LLMS_FROM_SCRATCH_MIRROR"] = str(mirror)
    if offline:  # every HTTP(S) request goes to a closed local port
        env.update(https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                   no_proxy="", NO_PROXY="")
    return run_script("ch05/01_main-chapter-code/gpt_generate.py", *args, env=env)


def gpt2_tokenizer():
    gpt_generate.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


def hf_greedy(hf_model, token_ids, max_new_tokens):
    """Greedy decoding with the Hugging Face model: the independent reference."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            next_id = hf_model(token_ids).logits[:, -1].argmax(dim=-1, keepdim=True)
        token_ids = torch.cat([token_ids, next_id], dim=1)
    return token_ids


@pytest.mark.slow
def test_greedy_openai_generation_equals_hugging_face(tmp_path):
    hf_model = random_hf_gpt2(SMALL_HPARAMS, seed=5)
    mirror = write_openai_gpt2_mirror(tmp_path / "mirror", "124M", hf_model=hf_model)
    tokenizer = gpt2_tokenizer()
    expected_ids = hf_greedy(hf_model, torch.tensor([tokenizer.encode(PROMPT)]), 12)
    expected = tokenizer.decode(expected_ids[0].tolist())

    result = run_gpt_generate("--prompt", PROMPT, "--temperature", 0, "--max-new-tokens", 12,
                              "--models-dir", tmp_path / "models", "--device", "cpu",
                              mirror=mirror)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    assert (tmp_path / "models" / "124M" / "model.ckpt.index").is_file()


@pytest.mark.slow
def test_checkpoint_sampling_matches_generate_with_the_same_seed(tmp_path):
    cfg = {**gpt_generate.GPT_CONFIG_124M, "context_length": 32, "emb_dim": 32, "n_heads": 2,
           "n_layers": 2}
    torch.manual_seed(0)
    model = gpt_generate.GPTModel(cfg)
    gpt_utils.save_checkpoint(tmp_path / "model.pth", model,
                              torch.optim.AdamW(model.parameters()), cfg)
    model.eval()
    tokenizer = gpt2_tokenizer()
    torch.manual_seed(42)
    expected_ids = gpt_utils.generate(model, gpt_utils.text_to_token_ids(PROMPT, tokenizer),
                                      max_new_tokens=40, context_size=32, temperature=1.2,
                                      top_k=20)
    expected = gpt_utils.token_ids_to_text(expected_ids, tokenizer)

    result = run_gpt_generate("--checkpoint", tmp_path / "model.pth", "--prompt", PROMPT,
                              "--temperature", 1.2, "--top-k", 20, "--max-new-tokens", 40,
                              "--seed", 42, "--device", "cpu", offline=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"


def test_no_network_and_no_mirror_gives_one_clear_error_line(tmp_path):
    result = run_gpt_generate("--models-dir", tmp_path / "models", offline=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: could not download GPT-2 124M")
    assert "LLMS_FROM_SCRATCH_MIRROR" in lines[0]
    assert str(tmp_path / "models" / "124M") in lines[0]


def test_help_lists_the_options(tmp_path):
    result = run_script_in_process("ch05/01_main-chapter-code/gpt_generate.py", ["--help"],
                                   tmp_path)
    assert result.returncode == 0
    for option in ("--model-size", "--checkpoint", "--prompt", "--temperature", "--top-k",
                   "--max-new-tokens", "--seed", "--models-dir", "1558M"):
        assert option in result.stdout


TINY = tiny_gpt_config(context_length=32, n_heads=2)


def test_the_books_plain_state_dict_is_accepted(tmp_path):
    """`torch.save(model.state_dict(), "model.pth")`, the book's listing, loads unchanged."""
    torch.manual_seed(0)
    model = gpt_generate.GPTModel(TINY).eval()
    torch.save(model.state_dict(), tmp_path / "model.pth")

    loaded = gpt_generate.load_trained_gpt(tmp_path / "model.pth", TINY).eval()
    idx = torch.tensor([[15496, 11, 314, 716]])
    torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)
    # the same file through the chapter's helper, which the notebook uses
    again = gpt_generate.GPTModel(TINY)
    checkpoint = gpt_utils.load_checkpoint(tmp_path / "model.pth", again)
    assert "optimizer_state_dict" not in checkpoint


def test_a_checkpoint_that_does_not_fit_the_flags_names_the_shapes(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(gpt_generate.GPTModel(TINY).state_dict(), tmp_path / "model.pth")
    with pytest.raises(SystemExit) as excinfo:
        gpt_generate.run_from_command_line(["--checkpoint", str(tmp_path / "model.pth"),
                                           "--device", "cpu"])
    assert excinfo.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "argument --checkpoint" in lines[0]
    assert "pos_emb.weight: checkpoint (32, 32), model (256, 768)" in lines[0]
    assert "--model-size 124M --context-length 256" in lines[0]
    assert "IndexError" not in lines[0]

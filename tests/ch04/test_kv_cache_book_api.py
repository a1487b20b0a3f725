"""The book's KV-cache API, called as the book calls it, and the optimized variant.

`gpt_with_kv_cache.py`: `GPTModel(cfg)`, `model(idx, use_cache=True)`,
`reset_kv_cache()`, `generate_text_simple_cached(model, idx, max_new_tokens)`.
`gpt_with_kv_cache_optimized.py`: the same names with a sliding window
(`cfg["kv_window_size"]`), a preallocated cache and chunked prefill. Within the
window it must give the chapter model's ids; beyond it, the ids of uncached
generation with the same window (the chapter model with a banded causal mask).
Float64 throughout, as in test_kv_cache.py.
"""

import os
import subprocess
import sys

import pytest
import torch
from support.course_imports import REPO_ROOT, import_course_module

KV_FOLDER = REPO_ROOT / "ch04" / "03_kv-cache"
kv = import_course_module("ch04/03_kv-cache/gpt_with_kv_cache.py")
opt = import_course_module("ch04/03_kv-cache/gpt_with_kv_cache_optimized.py")
prev = import_course_module("ch04/03_kv-cache/previous_chapters.py")

CFG = {"vocab_size": 97, "context_length": 24, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": True}


def prompt(length, seed=1, batch_size=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, CFG["vocab_size"], (batch_size, length), generator=generator)


def same_weights(model_class, cfg, seed=0):
    """The chapter's GPTModel and `model_class(cfg)` with the same weights, float64."""
    torch.manual_seed(seed)
    chapter = prev.GPTModel(CFG).double().eval()
    model = model_class(cfg).double().eval()
    model.load_state_dict(chapter.state_dict())
    return chapter, model


def banded(chapter, window):
    """The chapter model with each token seeing only itself and window - 1 tokens before."""
    n = CFG["context_length"]
    rows = torch.arange(n).unsqueeze(1)
    cols = torch.arange(n).unsqueeze(0)
    band_mask = ((cols > rows) | (cols <= rows - window)).double()
    for block in chapter.trf_blocks:
        block.att.mask.copy_(band_mask)
    return chapter


def test_the_books_calls_on_the_kv_cache_gpt_model():
    torch.manual_seed(123)
    model = kv.GPTModel(CFG)
    model.eval()
    idx = prompt(5)
    full = model(idx)  # use_cache=False: the chapter's computation
    assert full.shape == (1, 5, CFG["vocab_size"])

    model.reset_kv_cache()
    first = model(idx[:, :3], use_cache=True)
    rest = model(idx[:, 3:], use_cache=True)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, rtol=1e-5, atol=1e-5)

    model.reset_kv_cache()
    out = kv.generate_text_simple_cached(model, idx, max_new_tokens=6)
    assert out.shape == (1, 11)
    assert torch.equal(out, kv.generate_text_simple_cached(model, idx, 6, use_cache=False))
    assert torch.equal(out, prev.generate_text_simple(model, idx, 6, CFG["context_length"]))


@pytest.mark.parametrize("module", [kv, opt], ids=["kv-cache", "optimized"])
def test_same_seed_gives_the_chapter_models_weights(module):
    torch.manual_seed(123)
    chapter = prev.GPTModel(CFG)
    torch.manual_seed(123)
    model = module.GPTModel({**CFG, "kv_window_size": 8})
    for (name, expected), (other, actual) in zip(chapter.state_dict().items(),
                                                 model.state_dict().items(), strict=True):
        assert name == other and torch.equal(expected, actual), name


@pytest.mark.parametrize("window", [24, 8, 1])
def test_optimized_uncached_forward_is_the_banded_chapter_model(window):
    chapter, model = same_weights(opt.GPTModel, {**CFG, "kv_window_size": window})
    idx = prompt(CFG["context_length"], batch_size=2)
    torch.testing.assert_close(model(idx), banded(chapter, window)(idx), rtol=0, atol=1e-12)


@pytest.mark.parametrize("prompt_length, max_new_tokens", [(3, 5), (7, 40), (24, 3), (30, 10)])
def test_optimized_generation_within_the_window_equals_the_chapter_model(
        prompt_length, max_new_tokens):
    # The window is the whole context: the chapter's computation, also when the text
    # outgrows the context (30-token prompt, 47 tokens in all) and the window slides.
    chapter, model = same_weights(opt.GPTModel, CFG)
    idx = prompt(prompt_length, seed=prompt_length, batch_size=2)
    expected = prev.generate_text_simple(chapter, idx, max_new_tokens, CFG["context_length"])
    assert opt.generate_text_simple_cached(model, idx, max_new_tokens).tolist() == \
        expected.tolist()


@pytest.mark.parametrize("window", [5, 13])
@pytest.mark.parametrize("prompt_length", [2, 20])
def test_optimized_generation_beyond_the_window_equals_uncached_generation(
        window, prompt_length):
    chapter, model = same_weights(opt.GPTModel, {**CFG, "kv_window_size": window})
    idx = prompt(prompt_length, seed=prompt_length + window)
    expected = prev.generate_text_simple(banded(chapter, window), idx, 30,
                                         CFG["context_length"])
    assert opt.generate_text_simple_cached(model, idx, 30).tolist() == expected.tolist()
    uncached = opt.generate_text_simple_cached(model, idx, 30, use_cache=False)
    assert uncached.tolist() == expected.tolist()
    # the tokens after the prompt really differ from full attention's somewhere
    if window == 5 and prompt_length == 20:
        full = prev.generate_text_simple(same_weights(opt.GPTModel, CFG)[0], idx, 30, 24)
        assert full.tolist() != expected.tolist()


def test_chunked_prefill_gives_the_logits_of_one_pass():
    chapter, model = same_weights(opt.GPTModel, {**CFG, "kv_window_size": 6})
    idx = prompt(20, batch_size=2)
    expected = banded(chapter, 6)(idx)
    model.reset_kv_cache()
    pieces = [model(idx[:, begin:begin + size], use_cache=True)
              for begin, size in ((0, 6), (6, 1), (7, 5), (12, 6), (18, 2))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, rtol=0, atol=1e-12)
    model.reset_kv_cache()
    with pytest.raises(ValueError, match="kv_window_size=6"):
        model(idx[:, :7], use_cache=True)  # more than a window at once: chunk it


def test_optimized_cache_is_allocated_once_and_stays_window_sized():
    _, model = same_weights(opt.GPTModel, {**CFG, "kv_window_size": 4})
    att = model.trf_blocks[0].att
    model.reset_kv_cache()
    model(prompt(4), use_cache=True)
    buffer = att.cache_k.data_ptr()
    for token in prompt(15, seed=7).split(1, dim=1):
        model(token, use_cache=True)
        assert att.cache_k.data_ptr() == buffer
        assert att.num_cached <= 2 * 4
    assert model.cached_tokens() == 19
    model.reset_kv_cache()
    assert model.cached_tokens() == 0 and att.cache_k is None


def test_optimized_window_size_is_checked():
    with pytest.raises(ValueError, match="kv_window_size"):
        opt.GPTModel({**CFG, "kv_window_size": 0})


def test_window_wider_than_the_context_is_the_chapter_model():
    """The book accepts kv_window_size > context_length: the window only bounds the cache."""
    wide = CFG["context_length"] * 4
    chapter, model = same_weights(opt.GPTModel, {**CFG, "kv_window_size": wide})
    assert model.kv_window_size == wide
    idx = prompt(7, seed=3, batch_size=2)
    expected = prev.generate_text_simple(chapter, idx, 30, CFG["context_length"])
    assert opt.generate_text_simple_cached(model, idx, 30).tolist() == expected.tolist()
    # the buffer is sized by the context, not by the (wider) window
    assert model.trf_blocks[0].att.cache_k is None  # freed after generation
    model.reset_kv_cache()
    model(idx, use_cache=True)
    assert model.trf_blocks[0].att.cache_k.shape[2] == 2 * CFG["context_length"]


@pytest.mark.slow
def test_benchmark_without_transformers_names_the_package(tmp_path):
    (tmp_path / "transformers.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "benchmark.py", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
         "--context-length", "16", "--max-new-tokens", "4", "--repeats", "1",
         "--device", "cpu"],
        cwd=KV_FOLDER, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stdout.splitlines() if "transformers" in line]
    assert skipped and all("pip install transformers" in line for line in skipped)
    assert "all 4 methods produced the same 8 token ids: True" in result.stdout

"""The package's KV-cache generators give exactly chapter 4's greedy ids.

Reference: chapter 4's `generate_text_simple` on each prompt alone. The cached
models carry the chapter model's weights (state dicts load unchanged), and run
in float64 so that different summation orders cannot flip a greedy choice.
"""

import pytest
import torch
from support.helpers import run_script_in_process
from llms_from_scratch.ch04 import GPTModel, generate_text_simple
from llms_from_scratch.kv_cache import generate as kv_generate
from llms_from_scratch.kv_cache import gpt2 as kv_gpt2
from llms_from_scratch.kv_cache import llama3 as kv_llama3
from llms_from_scratch.kv_cache import utils as kv_utils
from llms_from_scratch.kv_cache_batched import generate as batched_generate
from llms_from_scratch.kv_cache_batched import gpt2 as batched_gpt2
from llms_from_scratch.llama3 import Llama3Model

CONFIG = {"vocab_size": 97, "context_length": 32, "emb_dim": 32, "n_heads": 4,
          "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True}
LLAMA = {"vocab_size": 101, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
         "hidden_dim": 64, "n_kv_groups": 2, "rope_base": 500_000.0, "dtype": torch.float64}
PROMPT_LENGTHS = (5, 1, 9, 3, 12, 7)
NEW_TOKENS = 10


def load_into(model_class, chapter_model, cfg):
    model = model_class(cfg).double().eval()
    model.load_state_dict(chapter_model.state_dict())  # strict: same names and shapes
    return model


@pytest.fixture(scope="module")
def chapter_model():
    torch.manual_seed(123)
    return GPTModel(CONFIG).double().eval()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, CONFIG["vocab_size"], (n,), generator=generator)
            for n in PROMPT_LENGTHS]


@pytest.fixture(scope="module")
def expected(chapter_model, prompts):
    """Chapter 4's greedy continuation of each prompt, generated alone."""
    return [generate_text_simple(chapter_model, p[None], NEW_TOKENS,
                                 CONFIG["context_length"])[0] for p in prompts]


def test_cached_logits_equal_uncached(chapter_model):
    model = load_into(kv_gpt2.GPTModel, chapter_model, CONFIG)
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 11))
    full = chapter_model(ids)
    torch.testing.assert_close(model(ids), full)  # no cache: the chapter's computation
    cache = kv_generate.KVCache(CONFIG["n_layers"])
    model.reset_kv_cache()
    pieces = [model(ids[:, :6], cache=cache)] + [model(ids[:, i:i + 1], cache=cache)
                                                 for i in range(6, 11)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    assert model.current_pos == 11


def test_kv_cache_generate_gives_chapter_4s_ids(chapter_model, prompts, expected):
    model = load_into(kv_gpt2.GPTModel, chapter_model, CONFIG)
    for prompt, want in zip(prompts, expected, strict=True):
        got = kv_generate.generate_text_simple(model, prompt[None], NEW_TOKENS)
        assert torch.equal(got[0], want)
        uncached = kv_generate.generate_text_simple(model, prompt[None], NEW_TOKENS,
                                                    use_cache=False)
        assert torch.equal(uncached[0], want)


def test_kv_cache_generates_a_batch_of_equal_length_prompts(chapter_model):
    model = load_into(kv_gpt2.GPTModel, chapter_model, CONFIG)
    ids = torch.randint(0, CONFIG["vocab_size"], (3, 6))
    want = generate_text_simple(chapter_model, ids, NEW_TOKENS, CONFIG["context_length"])
    assert torch.equal(kv_generate.generate_text_simple(model, ids, NEW_TOKENS), want)


def test_stream_yields_the_same_tokens_and_stops_at_eos(chapter_model, prompts, expected):
    model = load_into(kv_gpt2.GPTModel, chapter_model, CONFIG)
    prompt, want = prompts[0], expected[0]
    streamed = list(kv_generate.generate_text_simple_stream(model, prompt[None], NEW_TOKENS))
    assert all(t.shape == (1, 1) for t in streamed)
    assert torch.cat(streamed, dim=1)[0].tolist() == want[len(prompt):].tolist()

    eos = int(want[len(prompt) + 3])
    first_eos = want[len(prompt):].tolist().index(eos)
    stopped = list(kv_generate.generate_text_simple_stream(model, prompt[None], NEW_TOKENS,
                                                           eos_token_id=eos))
    assert len(stopped) == first_eos


def test_prompt_and_new_tokens_must_fit_the_context(chapter_model):
    model = load_into(kv_gpt2.GPTModel, chapter_model, CONFIG)
    ids = torch.zeros(1, 30, dtype=torch.long)
    with pytest.raises(ValueError, match="trim_input_tensor"):
        kv_generate.generate_text_simple(model, ids, 5)
    trimmed = kv_generate.trim_input_tensor(ids, CONFIG["context_length"], 5)
    assert kv_generate.generate_text_simple(model, trimmed, 5).shape == (1, 32)


def test_batched_generation_gives_each_prompts_ids(chapter_model, prompts, expected):
    """Left-padded prompts of different lengths, per-row positions: row b == prompt b alone."""
    model = load_into(batched_gpt2.GPTModel, chapter_model, CONFIG)
    idx, lengths = batched_generate.left_pad(prompts, pad_token_id=0)
    width = idx.shape[1]
    for use_cache in (True, False):
        out = batched_generate.generate_text_simple(model, idx, NEW_TOKENS,
                                                    use_cache=use_cache, prompt_lengths=lengths)
        assert out.shape == (len(prompts), width + NEW_TOKENS)
        for row, (prompt, want) in enumerate(zip(prompts, expected, strict=True)):
            assert torch.equal(out[row, width - len(prompt):], want), (use_cache, row)


def test_batched_padding_tokens_do_not_matter(chapter_model, prompts):
    model = load_into(batched_gpt2.GPTModel, chapter_model, CONFIG)
    zeros, lengths = batched_generate.left_pad(prompts, pad_token_id=0)
    nines, _ = batched_generate.left_pad(prompts, pad_token_id=9)
    first = batched_generate.generate_text_simple(model, zeros, 4, prompt_lengths=lengths)
    second = batched_generate.generate_text_simple(model, nines, 4, prompt_lengths=lengths)
    assert torch.equal(first[:, -4:], second[:, -4:])


def test_batched_cache_reads_and_writes_rows():
    cache = batched_generate.KVCache(n_layers=1, batch_size=2)
    keys, values = torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4)
    cache.update_layer(0, (keys, values))
    cache.update(0, 1, (torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)))
    row_keys, row_values = cache.get(0, 1)
    assert row_keys.eq(1).all() and row_values.eq(2).all() and not keys[0].any()
    cache.reset()
    assert cache.get_layer(0) is None and cache.get(0, 0) is None


def test_llama_kv_cache_model_generates_the_uncached_ids():
    torch.manual_seed(8)
    chapter = Llama3Model(LLAMA).eval()
    model = kv_llama3.Llama3Model(LLAMA).eval()
    model.load_state_dict(chapter.state_dict())
    ids = torch.randint(0, LLAMA["vocab_size"], (2, 7))
    want = generate_text_simple(chapter, ids, NEW_TOKENS, LLAMA["context_length"])
    assert torch.equal(kv_generate.generate_text_simple(model, ids, NEW_TOKENS), want)
    assert model.current_pos == 7 + NEW_TOKENS - 1  # the last token is chosen, never fed


def test_benchmark_script_measures_three_ways_and_checks_the_ids(tmp_path):
    result = run_script_in_process("pkg/benchmarks/batched_generation.py",
                                   ["--test-mode", "--threads", "1", "--prompts", "3",
                                    "--max-new-tokens", "4"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("tokens/s") == 3
    assert "all three give the same ids: yes" in result.stdout
    assert "load average" in result.stdout and "torch" in result.stdout


def test_batched_stream_yields_one_token_per_row_and_stops_when_all_reach_eos(chapter_model,
                                                                              prompts, expected):
    model = load_into(batched_gpt2.GPTModel, chapter_model, CONFIG)
    idx, lengths = batched_generate.left_pad(prompts[:2])
    steps = list(batched_generate.generate_text_simple_stream(model, idx, NEW_TOKENS,
                                                              prompt_lengths=lengths))
    assert [step.shape for step in steps] == [(2, 1)] * NEW_TOKENS
    assert torch.cat(steps, dim=1)[0].tolist() == expected[0][len(prompts[0]):].tolist()

    single, single_length = batched_generate.left_pad(prompts[:1])
    eos = int(expected[0][len(prompts[0]) + 2])
    first_eos = expected[0][len(prompts[0]):].tolist().index(eos)
    stopped = list(batched_generate.generate_text_simple_stream(
        model, single, NEW_TOKENS, eos_token_id=eos, prompt_lengths=single_length))
    assert len(stopped) == first_eos


def test_attention_mask_from_positions():
    """Row 0 starts at position 0 (no padding); row 1 has two padding tokens."""
    mask = kv_utils.attention_allowed_mask(torch.tensor([0, -2]), 4, 4)
    assert mask.shape == (2, 1, 4, 4)
    assert torch.equal(mask[0, 0], torch.ones(4, 4, dtype=torch.bool).tril())
    assert mask[1, 0].int().tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    # One new token after 5 cached ones sees all 6 keys.
    assert kv_utils.attention_allowed_mask(5, 1, 6).all()

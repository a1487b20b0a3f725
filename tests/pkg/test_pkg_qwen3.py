"""The package's Qwen3 modules: the chapter's model, with a KV cache, and batched.

References: the chapter's `Qwen3Model` (ch05/11_qwen3/qwen3.py) with the same
weights, and chapter 4's `generate_text_simple` on each prompt alone. Tiny
random configurations, dense and mixture of experts, in float64 so that
different summation orders cannot flip a greedy choice.
"""

import pytest
import torch
from support.course_imports import import_course_module
from llms_from_scratch import qwen3
from llms_from_scratch.ch04 import generate_text_simple
from llms_from_scratch.kv_cache import generate as kv_generate
from llms_from_scratch.kv_cache import qwen3 as kv_qwen3
from llms_from_scratch.kv_cache_batched import generate as batched_generate
from llms_from_scratch.kv_cache_batched import qwen3 as batched_qwen3

DENSE = {"vocab_size": 97, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
         "hidden_dim": 48, "head_dim": 16, "qk_norm": True, "n_kv_groups": 2,
         "rope_base": 10_000.0, "dtype": torch.float64}
MOE = {**DENSE, "num_experts": 4, "num_experts_per_tok": 2, "moe_hidden_dim": 16}
CONFIGS = {"dense": DENSE, "moe": MOE}
PROMPT_LENGTHS = (5, 1, 9, 3)
NEW_TOKENS = 8


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def chapter(request):
    """(config, the chapter's model, prompts, each prompt's greedy continuation alone)."""
    cfg = CONFIGS[request.param]
    chapter_qwen3 = import_course_module("ch05/11_qwen3/qwen3.py")
    torch.manual_seed(11)
    model = chapter_qwen3.Qwen3Model(cfg).eval()
    generator = torch.Generator().manual_seed(12)
    prompts = [torch.randint(0, cfg["vocab_size"], (n,), generator=generator)
               for n in PROMPT_LENGTHS]
    expected = [generate_text_simple(model, p[None], NEW_TOKENS, cfg["context_length"])[0]
                for p in prompts]
    return cfg, model, prompts, expected


def load_into(model_class, chapter_model, cfg):
    model = model_class(cfg).eval()
    model.load_state_dict(chapter_model.state_dict())  # strict: same names and shapes
    return model


def test_package_model_gives_the_chapter_models_logits(chapter):
    cfg, chapter_model, _, _ = chapter
    ids = torch.randint(0, cfg["vocab_size"], (2, 12))
    want = chapter_model(ids)
    for model_class in (qwen3.Qwen3Model, kv_qwen3.Qwen3Model, batched_qwen3.Qwen3Model):
        model = load_into(model_class, chapter_model, cfg)
        torch.testing.assert_close(model(ids), want, rtol=0, atol=1e-12)


def test_cached_logits_equal_uncached(chapter):
    cfg, chapter_model, _, _ = chapter
    model = load_into(kv_qwen3.Qwen3Model, chapter_model, cfg)
    ids = torch.randint(0, cfg["vocab_size"], (2, 11))
    cache = kv_qwen3.KVCache(cfg["n_layers"])
    model.reset_kv_cache()
    pieces = [model(ids[:, :6], cache=cache)] + [model(ids[:, i:i + 1], cache=cache)
                                                 for i in range(6, 11)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), chapter_model(ids))
    assert model.current_pos == 11


def test_kv_cache_generate_gives_chapter_4s_ids(chapter):
    cfg, chapter_model, prompts, expected = chapter
    model = load_into(kv_qwen3.Qwen3Model, chapter_model, cfg)
    for prompt, want in zip(prompts, expected, strict=True):
        assert torch.equal(kv_generate.generate_text_simple(model, prompt[None], NEW_TOKENS)[0],
                           want)
    streamed = list(kv_generate.generate_text_simple_stream(model, prompts[0][None], 3))
    assert torch.cat(streamed, dim=1)[0].tolist() == expected[0][len(prompts[0]):][:3].tolist()


def test_batched_generation_gives_each_prompts_ids(chapter):
    """Left-padded prompts of different lengths, per-row positions: row b == prompt b alone."""
    cfg, chapter_model, prompts, expected = chapter
    model = load_into(batched_qwen3.Qwen3Model, chapter_model, cfg)
    idx, lengths = batched_generate.left_pad(prompts, pad_token_id=7)
    width = idx.shape[1]
    for use_cache in (True, False):
        out = batched_generate.generate_text_simple(model, idx, NEW_TOKENS,
                                                    use_cache=use_cache, prompt_lengths=lengths)
        assert out.shape == (len(prompts), width + NEW_TOKENS)
        for row, (prompt, want) in enumerate(zip(prompts, expected, strict=True)):
            assert torch.equal(out[row, width - len(prompt):], want), (use_cache, row)
    assert model.current_pos.tolist() == [n + NEW_TOKENS - 1 for n in PROMPT_LENGTHS]


def test_batched_rope_rotates_each_row_by_its_own_positions():
    cos, sin = qwen3.compute_rope_params(8, context_length=10, dtype=torch.float64)
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    rotated = batched_qwen3.apply_rope(x, cos, sin, torch.tensor([0, 5]))
    torch.testing.assert_close(rotated[:1], qwen3.apply_rope(x[:1], cos, sin, 0))
    torch.testing.assert_close(rotated[1:], qwen3.apply_rope(x[1:], cos, sin, 5))


def test_cache_modules_reexport_every_config_and_the_loaders():
    for module in (kv_qwen3, batched_qwen3):
        assert module.QWEN3_CONFIG_30B_A3B is qwen3.QWEN3_CONFIG_30B_A3B
        assert module.QWEN_CONFIG_06_B is qwen3.QWEN_CONFIG_06_B
        assert module.load_weights_into_qwen is qwen3.load_weights_into_qwen
        assert module.Qwen3Tokenizer is qwen3.Qwen3Tokenizer
    assert qwen3.QWEN3_CONFIG_30B_A3B["num_experts"] == 128


def test_download_from_huggingface_keeps_a_file_that_is_there(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    path = qwen3.download_from_huggingface("Qwen/Qwen3-0.6B", "tokenizer.json", tmp_path)
    assert path == tmp_path / "tokenizer.json" and path.read_text() == "{}"

"""converting-llama2-to-llama3.ipynb and standalone-llama32.ipynb against Hugging Face.

Both notebooks define the same Llama 3 classes (the copy checker keeps them
identical), so the blocks are tested once. References: Hugging Face's Llama
(RoPE with Llama 3.1 scaling, grouped-query attention, whole models with random
weights, `generate`).
"""

import pytest
import torch
from support.llama_checkpoints import (
    hf_llama_config,
    meta_state_dict,
    random_hf_llama,
    tiny_llama32_config,
)
from support.course_imports import notebook_definitions
from safetensors.torch import load_file
from transformers.models.llama import modeling_llama

nb = notebook_definitions("ch05/07_gpt_to_llama/standalone-llama32.ipynb")
nb_llama3 = notebook_definitions("ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb")
ATOL = 1e-5

# Small versions of each family: Llama 3 (no RoPE scaling, own output head), Llama 3.2
# (scaling, tied head) and one with an explicit head_dim that differs from emb_dim / n_heads.
TINY_LLAMA3 = {**tiny_llama32_config(), "rope_freq": None}
TINY_LLAMA32 = tiny_llama32_config()
TINY_HEAD_DIM = {**tiny_llama32_config(), "head_dim": 24}
SHAPES = {"llama3": (TINY_LLAMA3, False), "llama32": (TINY_LLAMA32, True),
          "head_dim": (TINY_HEAD_DIM, False)}


def hf_rotary(cfg, positions, x):
    rotary = modeling_llama.LlamaRotaryEmbedding(hf_llama_config(cfg))
    return rotary(x, positions.unsqueeze(0))


@pytest.mark.parametrize("rope_freq", [
    None,
    {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_context_length": 8192},  # Llama 3.1
    {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_context_length": 8192},  # Llama 3.2
], ids=["llama3", "llama3.1", "llama3.2"])
def test_rope_with_frequency_scaling_matches_hugging_face(rope_freq):
    cfg = {**TINY_LLAMA3, "emb_dim": 4096, "n_heads": 32, "context_length": 131_072,
           "rope_freq": rope_freq}
    cos, sin = nb.precompute_rope_params(128, 500_000.0, 131_072, freq_config=rope_freq)
    # Positions spread over the whole 128k context, where the scaling matters.
    positions = torch.tensor([0, 1, 2, 100, 2047, 8191, 8192, 50_000, 131_071])
    x = torch.randn(1, 2, len(positions), 128)
    hf_cos, hf_sin = hf_rotary(cfg, positions, x)
    torch.testing.assert_close(cos[positions], hf_cos[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(sin[positions], hf_sin[0], atol=1e-5, rtol=0)
    if rope_freq is not None:  # the scaling really changes the slow frequencies
        plain_cos, _ = nb.precompute_rope_params(128, 500_000.0, 131_072)
        assert not torch.allclose(cos[50_000], plain_cos[50_000])


def copy_attention_weights(ours, reference):
    with torch.no_grad():
        for our_name, hf_name in [("W_query", "q_proj"), ("W_key", "k_proj"),
                                  ("W_value", "v_proj"), ("out_proj", "o_proj")]:
            getattr(ours, our_name).weight.copy_(getattr(reference, hf_name).weight)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_grouped_query_attention_matches_hugging_face(shape):
    cfg, _ = SHAPES[shape]
    torch.manual_seed(0)
    reference = modeling_llama.LlamaAttention(hf_llama_config(cfg), layer_idx=0).eval()
    ours = nb.GroupedQueryAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["n_heads"],
                                    cfg["n_kv_groups"], head_dim=cfg.get("head_dim"))
    copy_attention_weights(ours, reference)
    model = nb.Llama3Model(cfg)  # for its RoPE tables
    x = torch.randn(2, 50, cfg["emb_dim"])
    mask = torch.full((50, 50), float("-inf")).triu(1)[None, None]
    with torch.no_grad():
        expected, _ = reference(x, position_embeddings=hf_rotary(cfg, torch.arange(50), x),
                                attention_mask=mask)
        torch.testing.assert_close(ours(x, model.cos, model.sin), expected, atol=ATOL, rtol=0)


def converted_pair(shape):
    cfg, tied = SHAPES[shape]
    hf_model = random_hf_llama(cfg, tie_word_embeddings=tied)
    ours = nb.Llama3Model(cfg).eval()
    nb.load_weights_into_llama(ours, cfg, hf_model.state_dict())
    return cfg, tied, hf_model, ours


@pytest.fixture(scope="module", params=list(SHAPES))
def llama3_pair(request):
    return converted_pair(request.param)


@pytest.fixture(scope="module")
def llama32_pair():
    """Only the Llama 3.2 shape, for checks that do not depend on the shape."""
    return converted_pair("llama32")


def random_ids(cfg, batch_size, num_tokens, seed=123):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch_size, num_tokens), generator=generator)


def test_logits_match_hugging_face(llama3_pair):
    cfg, _, hf_model, ours = llama3_pair
    ids = random_ids(cfg, 2, 100)  # beyond original_context_length (64): scaled RoPE
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_safetensors_file_from_save_pretrained_loads(llama3_pair, tmp_path):
    cfg, tied, hf_model, _ = llama3_pair
    hf_model.save_pretrained(tmp_path)
    ours = nb.load_weights_into_llama(nb.Llama3Model(cfg).eval(), cfg,
                                      load_file(tmp_path / "model.safetensors"))
    if tied:
        assert ours.out_head.weight is ours.tok_emb.weight
    ids = random_ids(cfg, 1, 40, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_kv_cache_generation_matches_hugging_face_generate(llama3_pair):
    cfg, _, hf_model, ours = llama3_pair
    prompt = random_ids(cfg, 1, 7, seed=11)
    expected = hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 max_new_tokens=20, do_sample=False)
    actual = nb.generate_with_cache(ours, prompt, max_new_tokens=20)
    assert actual.tolist() == expected.tolist()
    assert ours.cached_tokens() == 0  # the cache is freed afterwards


def test_cached_steps_equal_the_full_forward_pass(llama3_pair):
    """Token by token and in uneven chunks, through several regrowths of the cache."""
    cfg, _, _, ours = llama3_pair
    ids = random_ids(cfg, 2, 45, seed=3)
    with torch.no_grad():
        full = ours(ids)
        ours.reset_cache()
        chunks = [ours(ids[:, start:end], use_cache=True)
                  for start, end in [(0, 5), (5, 6), (6, 7), (7, 20), (20, 21), (21, 45)]]
        ours.reset_cache()
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=ATOL, rtol=0)


def test_the_context_limit_is_enforced(llama32_pair):
    cfg, _, _, ours = llama32_pair
    ours.reset_cache()
    with torch.no_grad():
        ours(random_ids(cfg, 1, cfg["context_length"] - 1), use_cache=True)
        ours(random_ids(cfg, 1, 1), use_cache=True)  # exactly full
        with pytest.raises(ValueError, match="exceed the context length"):
            ours(random_ids(cfg, 1, 1), use_cache=True)
    ours.reset_cache()


def test_sampling_with_top_k_only_picks_top_k_tokens(llama32_pair):
    cfg, _, _, ours = llama32_pair
    prompt = random_ids(cfg, 1, 4, seed=1)
    with torch.no_grad():
        top3 = torch.topk(ours(prompt)[0, -1], 3).indices.tolist()
    for seed in range(5):
        torch.manual_seed(seed)
        out = nb.generate_with_cache(ours, prompt, max_new_tokens=1, temperature=1.5, top_k=3)
        assert out[0, -1].item() in top3


def count_parameters(cfg, tied_head=False):
    with torch.device("meta"):
        model = nb.Llama3Model(cfg)
    if tied_head:
        model.out_head.weight = model.tok_emb.weight
    return sum(p.numel() for p in model.parameters())


def test_full_size_parameter_counts():
    assert count_parameters(nb_llama3.LLAMA3_CONFIG_8B) == 8_030_261_248
    assert count_parameters(nb_llama3.LLAMA31_CONFIG_8B) == 8_030_261_248
    assert count_parameters(nb.LLAMA32_CONFIG_1B, tied_head=True) == 1_235_814_400
    assert count_parameters(nb.LLAMA32_CONFIG_3B, tied_head=True) == 3_212_749_824
    assert nb_llama3.count_parameters(nb.LLAMA32_CONFIG_1B, tied_head=True) == 1_235_814_400


def test_metas_original_layout_loads_with_grouped_keys(llama3_pair):
    """Meta's names and RoPE row order, with fewer key heads than query heads."""
    cfg, tied, hf_model, _ = llama3_pair
    params = meta_state_dict(hf_model, cfg)
    if tied:
        del params["output.weight"]  # a tied checkpoint has no separate head
    ours = nb.load_weights_into_llama(nb.Llama3Model(cfg).eval(), cfg, params)
    ids = random_ids(cfg, 1, 40, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)

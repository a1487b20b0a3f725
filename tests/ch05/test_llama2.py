"""converting-gpt-to-llama2.ipynb: every block and the whole Llama 2 against references.

The notebook's own definitions are tested (see support/course_imports.py). The
references are PyTorch's `torch.nn.RMSNorm`, direct formulas, and Hugging
Face's `LlamaForCausalLM` with random weights (no download).
"""

import json

import pytest
import torch
from support.llama_checkpoints import (hf_llama_config, meta_state_dict, random_hf_llama,
                               tiny_llama2_config)
from support.course_imports import notebook_definitions
from safetensors.torch import load_file
from transformers.models.llama import modeling_llama

nb = notebook_definitions("ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb")
ATOL = 1e-5


def test_rmsnorm_matches_torch_rmsnorm():
    torch.manual_seed(0)
    ours, reference = nb.RMSNorm(48), torch.nn.RMSNorm(48, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        reference.weight.copy_(ours.weight)
    x = 3 * torch.randn(2, 5, 48) + 1
    torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=1e-6)


def test_rmsnorm_keeps_bfloat16_and_matches_hugging_face():
    torch.manual_seed(0)
    ours, reference = nb.RMSNorm(32), modeling_llama.LlamaRMSNorm(32, eps=1e-5)
    x = torch.randn(4, 32).to(torch.bfloat16)
    out = ours(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, reference.to(torch.bfloat16)(x), atol=0, rtol=0)


def test_silu_and_swiglu_match_their_formulas():
    x = torch.linspace(-8, 8, 101)
    torch.testing.assert_close(nb.SiLU()(x), x / (1 + torch.exp(-x)), atol=1e-6, rtol=0)

    torch.manual_seed(0)
    ff = nb.SwiGLUFeedForward({"emb_dim": 16, "hidden_dim": 40, "dtype": torch.float32})
    x = torch.randn(3, 7, 16)
    w1, w2, w3 = ff.fc1.weight, ff.fc2.weight, ff.fc3.weight
    gate = x @ w1.T
    expected = ((gate * torch.sigmoid(gate)) * (x @ w2.T)) @ w3.T
    torch.testing.assert_close(ff(x), expected, atol=1e-6, rtol=1e-5)
    assert all(module.bias is None for module in (ff.fc1, ff.fc2, ff.fc3))


def hf_rotary(cfg, num_tokens, x):
    """Hugging Face's cos and sin for positions 0 .. num_tokens - 1."""
    rotary = modeling_llama.LlamaRotaryEmbedding(hf_llama_config(cfg))
    return rotary(x, torch.arange(num_tokens).unsqueeze(0))


@pytest.mark.parametrize("head_dim", [16, 128])
def test_rope_matches_hugging_face(head_dim):
    cfg = {**tiny_llama2_config(), "emb_dim": 4 * head_dim, "context_length": 300}
    cos, sin = nb.precompute_rope_params(head_dim, context_length=300)
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 300, head_dim), torch.randn(2, 4, 300, head_dim)
    hf_cos, hf_sin = hf_rotary(cfg, 300, q)
    expected_q, expected_k = modeling_llama.apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    torch.testing.assert_close(nb.compute_rope(q, cos, sin), expected_q, atol=1e-5, rtol=0)
    torch.testing.assert_close(nb.compute_rope(k, cos, sin), expected_k, atol=1e-5, rtol=0)


def causal_mask(num_tokens):
    """Hugging Face's additive mask for eager attention: -inf above the diagonal."""
    mask = torch.full((num_tokens, num_tokens), float("-inf")).triu(1)
    return mask[None, None]


def test_attention_matches_hugging_face():
    cfg = tiny_llama2_config()
    torch.manual_seed(0)
    reference = modeling_llama.LlamaAttention(hf_llama_config(cfg), layer_idx=0).eval()
    ours = nb.MultiHeadAttentionRoPE(cfg["emb_dim"], cfg["emb_dim"], cfg["n_heads"])
    with torch.no_grad():
        for our_name, hf_name in [("W_query", "q_proj"), ("W_key", "k_proj"),
                                  ("W_value", "v_proj"), ("out_proj", "o_proj")]:
            getattr(ours, our_name).weight.copy_(getattr(reference, hf_name).weight)
    x = torch.randn(2, 20, cfg["emb_dim"])
    cos, sin = nb.precompute_rope_params(cfg["emb_dim"] // cfg["n_heads"], context_length=64)
    with torch.no_grad():
        expected, _ = reference(x, position_embeddings=hf_rotary(cfg, 20, x),
                                attention_mask=causal_mask(20))
        torch.testing.assert_close(ours(x, cos, sin), expected, atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def llama2_pair():
    cfg = tiny_llama2_config()
    hf_model = random_hf_llama(cfg)
    ours = nb.Llama2Model(cfg).eval()
    nb.load_weights_into_llama(ours, cfg, hf_model.state_dict())
    return cfg, hf_model, ours


def random_ids(cfg, batch_size, num_tokens, seed=123):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch_size, num_tokens), generator=generator)


def test_logits_match_hugging_face(llama2_pair):
    cfg, hf_model, ours = llama2_pair
    ids = random_ids(cfg, 2, cfg["context_length"])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_sharded_safetensors_from_save_pretrained_load(llama2_pair, tmp_path):
    """The hub format: shards listed in model.safetensors.index.json, read like the notebook."""
    cfg, hf_model, _ = llama2_pair
    hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
    weight_map = json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
    shards = sorted(set(weight_map.values()))
    assert len(shards) > 1
    params = {}
    for shard in shards:
        params.update(load_file(tmp_path / shard))
    ours = nb.load_weights_into_llama(nb.Llama2Model(cfg).eval(), cfg, params)
    ids = random_ids(cfg, 1, 30, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_greedy_generation_matches_hugging_face(llama2_pair):
    cfg, hf_model, ours = llama2_pair
    prompt = random_ids(cfg, 1, 5, seed=7)
    expected = hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 max_new_tokens=12, do_sample=False)
    actual = nb.generate(ours, prompt, max_new_tokens=12, context_size=cfg["context_length"])
    assert actual.tolist() == expected.tolist()


def test_loader_names_what_does_not_fit(llama2_pair):
    cfg, hf_model, _ = llama2_pair
    params = dict(hf_model.state_dict())
    params["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="model.layers.1.mlp.up_proj.weight"):
        nb.load_weights_into_llama(nb.Llama2Model(cfg), cfg, params)
    del params["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(KeyError, match="trf_blocks.1.ff.fc2.weight"):
        nb.load_weights_into_llama(nb.Llama2Model(cfg), cfg, params)


def test_llama2_7b_parameter_count():
    with torch.device("meta"):
        model = nb.Llama2Model(nb.LLAMA2_CONFIG_7B)
    assert sum(p.numel() for p in model.parameters()) == 6_738_415_616
    assert model.tok_emb.weight.dtype == torch.bfloat16


def test_metas_original_checkpoint_loads_with_the_books_call(llama2_pair, tmp_path):
    """consolidated.00.pth's names and RoPE row order, loaded with the book's three arguments."""
    cfg, hf_model, _ = llama2_pair
    path = tmp_path / "consolidated.00.pth"
    torch.save(meta_state_dict(hf_model, cfg), path)
    params = torch.load(path, weights_only=True)
    assert "layers.0.attention.wq.weight" in params and "tok_embeddings.weight" in params
    ours = nb.load_weights_into_llama(nb.Llama2Model(cfg).eval(), cfg, params)
    ids = random_ids(cfg, 2, cfg["context_length"], seed=11)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)
    # without the row reordering the model would be another one: the check can fail
    unordered = nb.Llama2Model(cfg).eval()
    nb.load_weights_into_llama(unordered, cfg, hf_model.state_dict())
    with torch.no_grad():
        unordered.trf_blocks[0].att.W_query.weight.copy_(params["layers.0.attention.wq.weight"])
        assert not torch.allclose(unordered(ids), hf_model(ids).logits, atol=1e-3)

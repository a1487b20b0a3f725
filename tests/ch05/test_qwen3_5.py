"""Qwen3.5 (ch05/16_qwen3.5): the notebooks' own definitions against Hugging Face.

The reference is transformers' `Qwen3_5ForCausalLM` (its chunked Gated DeltaNet without a
cache, its recurrent one with a cache) on a tiny random model with every kind of layer;
the tokenizer is compared with transformers' tokenizer built from the same tokenizer.json.
"""

import pytest
import torch
from support.assertions import one_line_error
from support.hf_checkpoints import models_from_notebooks
from support.qwen3_5_checkpoints import (QWEN3_5_REPO_ID, hf_qwen3_5_tokenizer, random_hf_qwen3_5,
                                 tiny_qwen3_5_config, write_qwen_tokenizer_json)

FOLDER = "ch05/16_qwen3.5"
NOTEBOOKS = {"plain": "qwen3.5.ipynb", "kv": "qwen3.5-plus-kv-cache.ipynb"}


@pytest.fixture(scope="module")
def cfg():
    return tiny_qwen3_5_config(torch.float32)


@pytest.fixture(scope="module")
def hf_model(cfg):
    return random_hf_qwen3_5(cfg)


@pytest.fixture(scope="module")
def models(nbs, cfg, hf_model):
    """Our model from each notebook, loaded from the Hugging Face model's state dict."""
    return models_from_notebooks(nbs, "Qwen3_5Model", "load_weights_into_qwen3_5", cfg,
                                 hf_model.state_dict())


@pytest.fixture(scope="module")
def token_ids(cfg):
    # 90 tokens: longer than transformers' 64-token chunks in its Gated DeltaNet
    return torch.randint(0, cfg["vocab_size"], (2, 90), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("key", NOTEBOOKS)
def test_parameter_counts_match_the_book(nbs, key):
    nb = nbs[key]
    with torch.device("meta"):
        model = nb.Qwen3_5Model(nb.QWEN3_5_CONFIG)
    total = sum(p.numel() for p in model.parameters())
    assert total == 1_006_672_704
    assert total - model.tok_emb.weight.numel() == 752_393_024
    assert nb.calc_model_memory_size(model, torch.bfloat16) == pytest.approx(3.81, abs=0.005)


@pytest.mark.parametrize("key", NOTEBOOKS)
def test_logits_equal_hugging_face(models, key, token_ids, hf_logits):
    with torch.no_grad():
        ours = models[key](token_ids)
    torch.testing.assert_close(ours, hf_logits, rtol=0, atol=1e-5)


def test_loader_reads_the_released_multimodal_layout(nbs, cfg, hf_model, token_ids, hf_logits,
                                                    capsys):
    """Qwen/Qwen3.5-0.8B names the text model model.language_model.* and has no lm_head."""
    params = {name.replace("model.", "model.language_model.", 1): tensor
              for name, tensor in hf_model.state_dict().items() if name != "lm_head.weight"}
    params["model.visual.patch_embed.proj.weight"] = torch.zeros(8, 3, 2, 2, 2)
    model = nbs["plain"].Qwen3_5Model(cfg).eval()
    nbs["plain"].load_weights_into_qwen3_5(model, cfg, params)
    assert "Model uses weight tying." in capsys.readouterr().out
    assert model.out_head.weight is model.tok_emb.weight
    with torch.no_grad():
        torch.testing.assert_close(model(token_ids), hf_logits, rtol=0, atol=1e-5)


def test_cache_gives_the_same_logits_in_any_split(nbs, models, token_ids, hf_logits):
    """Prefill 50 tokens, then 30 at once, then one at a time: the cache-free logits."""
    model = models["kv"]
    cache = nbs["kv"].KVCache(n_layers=len(model.trf_blocks))
    model.reset_kv_cache()
    pieces = [token_ids[:, :50], token_ids[:, 50:80]]
    pieces += [token_ids[:, i:i + 1] for i in range(80, 90)]
    with torch.no_grad():
        logits = torch.cat([model(piece, cache=cache) for piece in pieces], dim=1)
    torch.testing.assert_close(logits, hf_logits, rtol=0, atol=1e-5)
    assert model.current_pos == 90
    linear = cache.linear_cache
    cfg = model.cfg
    conv_dim = 2 * cfg["linear_num_key_heads"] * cfg["linear_key_head_dim"] + \
        cfg["linear_num_value_heads"] * cfg["linear_value_head_dim"]
    for layer_idx, layer_type in enumerate(cfg["layer_types"]):
        if layer_type == "linear_attention":
            assert linear.conv_states[layer_idx].shape == (2, conv_dim, 3)
            assert linear.recurrent_states[layer_idx].shape == (
                2, cfg["linear_num_value_heads"], cfg["linear_key_head_dim"],
                cfg["linear_value_head_dim"])
            assert cache.get(layer_idx) is None
        else:
            assert cache.get(layer_idx)[0].shape[2] == 90
    cache.reset()
    assert not linear.has_previous_state and cache.get_all() == [None] * len(cache.get_all())


def test_greedy_ids_equal_with_and_without_cache_and_hugging_face(nbs, models, hf_model,
                                                                   token_ids):
    prompt = token_ids[:1, :20]
    ids = {key: torch.cat(list(nbs[key].generate_text_basic_stream(models[key], prompt, 12)),
                          dim=1)
           for key in NOTEBOOKS}
    assert torch.equal(ids["plain"], ids["kv"])
    # transformers generates with its own cache: the recurrent Gated DeltaNet path
    with torch.no_grad():
        hf_ids = hf_model.generate(prompt, max_new_tokens=12, do_sample=False, min_new_tokens=12,
                                   pad_token_id=0)[:, 20:]
    assert torch.equal(ids["kv"], hf_ids)


def test_generation_stops_at_eos_and_context_size(nbs, models, token_ids):
    prompt = token_ids[:1, :20]
    first = next(nbs["kv"].generate_text_basic_stream(models["kv"], prompt, 5))
    for key in NOTEBOOKS:
        stopped = list(nbs[key].generate_text_basic_stream(models[key], prompt, 5,
                                                           eos_token_id=first.item()))
        assert stopped == []
    capped = list(nbs["kv"].generate_text_basic_stream(models["kv"], prompt, 50, context_size=24))
    assert len(capped) == 5  # 20 prompt tokens + 4 fed back fill the 24 positions


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    return write_qwen_tokenizer_json(tmp_path_factory.mktemp("qwen3.5-tok") / "tokenizer.json")


TEXTS = ["Give me a short introduction to large language models.",
         "Llamas eat grass<|im_end|>\n<|im_start|>assistant\n<think>hm</think> ok",
         "Ünïcödé 😀 and numbers 12345, don't they?\n\n  spaces\ttab"]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_equals_transformers(nbs, tokenizer_json, text):
    ours = nbs["plain"].Qwen3_5Tokenizer(tokenizer_json, apply_chat_template=False)
    theirs = hf_qwen3_5_tokenizer(tokenizer_json)
    ids = ours.encode(text)
    assert ids == theirs.encode(text, add_special_tokens=False)
    assert ours.decode(ids) == text == theirs.decode(ids)


@pytest.mark.parametrize(("add_generation_prompt", "add_thinking"),
                         [(True, True), (True, False), (False, False)])
def test_chat_template_equals_transformers(nbs, tokenizer_json, add_generation_prompt,
                                           add_thinking):
    ours = nbs["kv"].Qwen3_5Tokenizer(tokenizer_json, repo_id=QWEN3_5_REPO_ID,
                                      add_generation_prompt=add_generation_prompt,
                                      add_thinking=add_thinking)
    theirs = hf_qwen3_5_tokenizer(tokenizer_json)
    messages = [{"role": "user", "content": TEXTS[0]}]
    expected = theirs.apply_chat_template(messages, tokenize=False,
                                          add_generation_prompt=add_generation_prompt,
                                          enable_thinking=add_thinking)
    assert ours._wrap_chat(TEXTS[0]) == expected
    if add_generation_prompt:  # Qwen3.5's scaffold (Qwen3 opens no <think> itself)
        assert expected.endswith("<think>\n" if add_thinking else "<think>\n\n</think>\n\n")
    assert ours.encode(TEXTS[0]) == theirs.encode(expected, add_special_tokens=False)
    assert ours.eos_token_id == theirs.convert_tokens_to_ids("<|im_end|>")
    assert ours.pad_token_id == theirs.convert_tokens_to_ids("<|endoftext|>")
    base = nbs["kv"].Qwen3_5Tokenizer(tokenizer_json, repo_id="Qwen/Qwen3.5-0.8B-Base")
    assert base.eos_token_id == ours.pad_token_id


def test_bad_input_gives_one_clear_line(nbs, cfg, hf_model, tmp_path):
    nb = nbs["plain"]
    assert "'Qwen3.5-9B'" in one_line_error(ValueError, lambda: nb.choose_config("Qwen3.5-9B"))
    wrong_count = {**cfg, "n_layers": 5}
    assert "5" in one_line_error(ValueError, lambda: nb.Qwen3_5Model(wrong_count))
    wrong_type = {**cfg, "layer_types": ["linear_attention"] * 3 + ["sliding_attention"]}
    assert "'sliding_attention'" in one_line_error(ValueError, lambda: nb.Qwen3_5Model(wrong_type))

    model = nb.Qwen3_5Model(cfg)
    missing = dict(hf_model.state_dict())
    del missing["model.layers.2.linear_attn.A_log"]
    message = one_line_error(ValueError, lambda: nb.load_weights_into_qwen3_5(model, cfg, missing))
    assert "'model.layers.2.linear_attn.A_log'" in message
    misshapen = dict(hf_model.state_dict())
    misshapen["model.layers.3.self_attn.q_proj.weight"] = torch.zeros(3, 3)
    message = one_line_error(ValueError,
                              lambda: nb.load_weights_into_qwen3_5(model, cfg, misshapen))
    assert "'model.layers.3.self_attn.q_proj.weight'" in message and "(3, 3)" in message

    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": {"type": "BPE", "vocab": ')
    message = one_line_error(ValueError, lambda: nb.Qwen3_5Tokenizer(broken))
    assert "tokenizer.json is not a valid tokenizer.json" in message

"""Gemma 4 (ch05/17_gemma4): the notebooks' own definitions against Hugging Face.

The reference is transformers' `Gemma4ForCausalLM` on a tiny random model with sliding
and full layers (window shorter than the sequence), KV-shared layers, proportional RoPE
and per-layer embeddings; the tokenizer is compared with transformers' tokenizer built
from the same tokenizer.json.
"""

import pytest
import torch
from support.assertions import one_line_error
from support.hf_checkpoints import models_from_notebooks
from support.gemma4_checkpoints import (hf_gemma4_config, hf_gemma4_tokenizer, random_hf_gemma4,
                                tiny_gemma4_config, write_gemma4_tokenizer)

FOLDER = "ch05/17_gemma4"
NOTEBOOKS = {"plain": "standalone-gemma4.ipynb", "kv": "standalone-gemma4-plus-kvcache.ipynb"}


@pytest.fixture(scope="module")
def cfg():
    return tiny_gemma4_config(torch.float32)


@pytest.fixture(scope="module")
def hf_model(cfg):
    return random_hf_gemma4(cfg)


@pytest.fixture(scope="module")
def models(nbs, cfg, hf_model):
    """Our model from each notebook, loaded from the Hugging Face model's state dict."""
    return models_from_notebooks(nbs, "Gemma4DenseModel", "load_weights_into_gemma4_dense", cfg,
                                 hf_model.state_dict())


@pytest.fixture(scope="module")
def token_ids(cfg):
    # 40 tokens: five times the sliding window of 8
    return torch.randint(0, cfg["vocab_size"], (2, 40), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("size", ["E2B", "e4b"])
def test_full_size_parameter_counts_equal_hugging_face(nbs, size):
    """Both sizes build (on meta) and have exactly the parameters of HF's model."""
    from transformers import Gemma4ForCausalLM

    cfg = nbs["plain"].get_gemma4_dense_config(size, dtype=torch.float32)
    assert len(cfg["layer_types"]) == cfg["n_layers"]
    with torch.device("meta"):
        ours = {key: nb.Gemma4DenseModel(cfg) for key, nb in nbs.items()}
        theirs = Gemma4ForCausalLM(hf_gemma4_config(cfg))
    hf_total = sum(p.numel() for p in theirs.parameters())  # head tied: counted once
    for model in ours.values():
        total = sum(p.numel() for p in model.parameters())
        assert total - model.out_head.weight.numel() == hf_total
    # the book's figure: Embedding(262144, 8960) for E2B's 35 layers x 256
    if size == "E2B":
        assert tuple(ours["plain"].embed_tokens_per_layer.weight.shape) == (262_144, 8960)


@pytest.mark.parametrize("key", NOTEBOOKS)
def test_logits_equal_hugging_face(models, key, token_ids, hf_logits):
    with torch.no_grad():
        ours = models[key](token_ids)
    torch.testing.assert_close(ours, hf_logits, rtol=0, atol=1e-5)


def test_loader_reads_the_released_multimodal_layout(nbs, cfg, hf_model, token_ids, hf_logits,
                                                    capsys):
    params = {name.replace("model.", "model.language_model.", 1): tensor
              for name, tensor in hf_model.state_dict().items() if name != "lm_head.weight"}
    params["model.vision_tower.patch_embedder.input_proj.weight"] = torch.zeros(8, 12)
    model = nbs["plain"].Gemma4DenseModel(cfg).eval()
    loaded = nbs["plain"].load_weights_into_gemma4_dense(model, cfg, params)
    assert loaded == len(hf_model.state_dict()) - 1  # all text tensors but the tied head
    assert "Model uses weight tying." in capsys.readouterr().out
    with torch.no_grad():
        torch.testing.assert_close(model(token_ids), hf_logits, rtol=0, atol=1e-5)


def test_cache_gives_the_same_logits_in_any_split(nbs, models, token_ids, hf_logits):
    model = models["kv"]
    cache = nbs["kv"].KVCache(n_layers=model.cfg["n_layers"])
    model.reset_kv_cache()
    pieces = [token_ids[:, :12], token_ids[:, 12:30]]
    pieces += [token_ids[:, i:i + 1] for i in range(30, 40)]
    with torch.no_grad():
        logits = torch.cat([model(piece, cache=cache) for piece in pieces], dim=1)
    torch.testing.assert_close(logits, hf_logits, rtol=0, atol=1e-5)
    assert model.current_pos == 40
    first_shared = model.cfg["n_layers"] - model.cfg["num_kv_shared_layers"]
    for idx, entry in enumerate(cache.get_all()):
        assert (entry is None) == (idx >= first_shared)
    cache.reset()
    assert cache.get_all() == [None] * model.cfg["n_layers"]


def test_greedy_ids_equal_with_and_without_cache_and_hugging_face(nbs, models, hf_model,
                                                                   token_ids):
    prompt = token_ids[:1, :6]
    ids = {key: torch.cat(list(nbs[key].generate_text_basic_stream(models[key], prompt, 12)),
                          dim=1)
           for key in NOTEBOOKS}
    assert torch.equal(ids["plain"], ids["kv"])
    with torch.no_grad():  # transformers' own cache, past the sliding window
        hf_ids = hf_model.generate(prompt, max_new_tokens=12, min_new_tokens=12,
                                   do_sample=False, pad_token_id=0)[:, 6:]
    assert torch.equal(ids["kv"], hf_ids)


def test_generation_stops_at_the_stop_token(nbs, models, token_ids):
    prompt = token_ids[:1, :6]
    first = next(nbs["kv"].generate_text_basic_stream(models["kv"], prompt, 3))
    for key in NOTEBOOKS:
        assert list(nbs[key].generate_text_basic_stream(models[key], prompt, 5,
                                                        eos_token_id=first.item())) == []


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    return write_gemma4_tokenizer(tmp_path_factory.mktemp("gemma4-tok"))


TEXTS = ["Give me a short introduction to large language models.",
         "Llamas eat grass<turn|>\n<|turn>model\nok",
         "Ünïcödé 😀 and numbers 12345, don't they?\n\n  spaces\ttab"]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_equals_transformers(nbs, tokenizer_json, text):
    ours = nbs["plain"].GemmaTokenizer(tokenizer_json)
    theirs = hf_gemma4_tokenizer(tokenizer_json)
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ids[0] == ours.bos_token_id and ids.count(ours.bos_token_id) == 1
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids,
                                                                       skip_special_tokens=True)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_template_equals_transformers(nbs, tokenizer_json, add_generation_prompt):
    ours = nbs["kv"].GemmaTokenizer(tokenizer_json)
    theirs = hf_gemma4_tokenizer(tokenizer_json)
    messages = [{"role": "user", "content": TEXTS[0]},
                {"role": "assistant", "content": "Models of text. "},
                {"role": "user", "content": TEXTS[2]}]
    expected = theirs.apply_chat_template(messages, tokenize=False,
                                          add_generation_prompt=add_generation_prompt)
    text = ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
    assert text == expected
    assert text.startswith("<bos><|turn>user\n") and "<turn|>\n<|turn>model\n" in text
    ids = ours.apply_chat_template(messages, tokenize=True,
                                   add_generation_prompt=add_generation_prompt)
    assert ids == theirs.encode(expected, add_special_tokens=False)  # a single <bos>
    assert ids.count(ours.bos_token_id) == 1
    assert ours.turn_token_id == theirs.convert_tokens_to_ids("<turn|>")
    if add_generation_prompt:
        single = [messages[0]]
        assert nbs["kv"].apply_chat_template(TEXTS[0]) == ours.apply_chat_template(
            single, add_generation_prompt=True)


def test_bad_input_gives_one_clear_line(nbs, cfg, hf_model, tmp_path):
    nb = nbs["plain"]
    assert "'E9B'" in one_line_error(ValueError, lambda: nb.get_gemma4_dense_config("E9B"))
    wrong_count = {**cfg, "n_layers": 5}
    assert "n_layers is 5" in one_line_error(ValueError, lambda: nb.Gemma4DenseModel(wrong_count))
    wrong_type = {**cfg, "layer_types": ["linear_attention"] + cfg["layer_types"][1:]}
    assert "'linear_attention'" in one_line_error(ValueError,
                                                   lambda: nb.Gemma4DenseModel(wrong_type))

    model = nb.Gemma4DenseModel(cfg)
    missing = dict(hf_model.state_dict())
    del missing["model.layers.2.self_attn.k_norm.weight"]
    message = one_line_error(KeyError,
                              lambda: nb.load_weights_into_gemma4_dense(model, cfg, missing))
    assert "'model.layers.2.self_attn.k_norm.weight'" in message
    misshapen = dict(hf_model.state_dict())
    misshapen["model.layers.6.mlp.up_proj.weight"] = torch.zeros(3, 3)
    message = one_line_error(ValueError,
                              lambda: nb.load_weights_into_gemma4_dense(model, cfg, misshapen))
    assert "'model.layers.6.mlp.up_proj.weight'" in message and "(3, 3)" in message

    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": {"type": "BPE", "vocab": ')
    message = one_line_error(ValueError, lambda: nb.GemmaTokenizer(broken))
    assert "is not a valid tokenizer.json" in message

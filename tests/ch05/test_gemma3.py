"""standalone-gemma3.ipynb and standalone-gemma3-plus-kvcache.ipynb against Hugging Face.

References: `Gemma3ForCausalLM` and `Gemma3RMSNorm` from transformers, built from
random tiny configurations whose sequences are longer than the sliding window, and
transformers' `GemmaTokenizer` built from the same locally written `tokenizer.json`
and chat template. The KV-cache path is also compared with the cache-free path.
"""


import pytest
import torch
from support.assertions import one_line_error
from support.gemma3_checkpoints import (
    random_hf_gemma3,
    tiny_gemma3_config,
    write_gemma_tokenizer,
)
from support.course_imports import notebook_definitions
from safetensors.torch import load_file

FOLDER = "ch05/12_gemma3"
plain = notebook_definitions(f"{FOLDER}/standalone-gemma3.ipynb")
kv = notebook_definitions(f"{FOLDER}/standalone-gemma3-plus-kvcache.ipynb")
BOTH = pytest.mark.parametrize("nb", [plain, kv], ids=["no-cache", "kv-cache"])
ATOL = 1e-5

# Eight layers (five sliding, one full, two sliding), window 8, 40-token sequences:
# the window is crossed many times. Two key/value heads for four query heads, and
# a query_pre_attn_scalar that differs from head_dim, so its use is tested.
TINY_GQA = {**tiny_gemma3_config(), "vocab_size": 300, "context_length": 128, "emb_dim": 64,
            "n_heads": 4, "n_kv_groups": 2, "n_layers": 8, "hidden_dim": 96, "head_dim": 16,
            "sliding_window": 8, "query_pre_attn_scalar": 24,
            "layer_types": ["sliding_attention"] * 5 + ["full_attention"]
            + ["sliding_attention"] * 2}
TINY_MQA = tiny_gemma3_config()  # one key/value head and window 16, as the fake hub's model
CONFIGS = pytest.mark.parametrize("cfg", [TINY_GQA, TINY_MQA], ids=["gqa-window8", "mqa-window16"])


@pytest.fixture(scope="module")
def hf_models():
    return {id(cfg): random_hf_gemma3(cfg, seed=1) for cfg in (TINY_GQA, TINY_MQA)}


def hub_state_dict(hf_model, tmp_path):
    """The tensors as the hub's model.safetensors holds them (tied head left out)."""
    hf_model.save_pretrained(tmp_path)
    return load_file(tmp_path / "model.safetensors")


def ours_from(nb, cfg, hf_model, tmp_path):
    model = nb.Gemma3Model(cfg)
    nb.load_weights_into_gemma(model, cfg, hub_state_dict(hf_model, tmp_path))
    return model.eval()


def test_270m_parameter_count_and_schedule_on_meta():
    """The book's figures for 270M, counted without allocating the weights."""
    for nb in (plain, kv):
        cfg = nb.GEMMA3_CONFIG_270M
        with torch.device("meta"):
            model = nb.Gemma3Model(cfg)
        total = sum(p.numel() for p in model.parameters())
        assert total == 435_870_336
        assert total - model.tok_emb.weight.numel() == 268_098_176
        assert f"{nb.calc_model_memory_size(model, torch.float32):.2f}" == "3.37"
        assert f"{nb.calc_model_memory_size(model, torch.bfloat16):.2f}" == "1.69"
        assert len(model.blocks) == 18 and sum(
            block.attn_type == "full_attention" for block in model.blocks) == 3
        assert [b.attn_type for b in model.blocks[:6]] == ["sliding_attention"] * 5 + [
            "full_attention"]
        assert (cfg["sliding_window"], cfg["query_pre_attn_scalar"]) == (512, 256)
        assert (cfg["rope_local_base"], cfg["rope_base"]) == (10_000.0, 1_000_000.0)
        assert model.blocks[0].att.scaling == 256 ** -0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_matches_hugging_face(dtype):
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

    torch.manual_seed(0)
    ours, theirs = plain.RMSNorm(48), Gemma3RMSNorm(48, eps=1e-6)
    assert torch.equal(ours.scale, torch.zeros(48))  # (1 + 0): the identity at first
    with torch.no_grad():
        theirs.weight.normal_()
        ours.scale.copy_(theirs.weight)
    x = 3 * torch.randn(2, 5, 48, dtype=dtype)
    assert torch.equal(ours(x), theirs(x))


@BOTH
@CONFIGS
def test_logits_match_hugging_face_across_the_window(nb, cfg, hf_models, tmp_path):
    hf_model = hf_models[id(cfg)]
    torch.manual_seed(2)
    ids = torch.randint(0, cfg["vocab_size"], (2, 40))
    with torch.no_grad():
        reference = hf_model(ids).logits
        ours = ours_from(nb, cfg, hf_model, tmp_path)(ids)
    torch.testing.assert_close(ours, reference, atol=ATOL, rtol=0)
    # The window matters: without it, the same weights give other logits.
    wide = ours_from(nb, {**cfg, "sliding_window": 1000}, hf_model, tmp_path)
    with torch.no_grad():
        assert (wide(ids) - reference)[:, cfg["sliding_window"]:].abs().max() > 1e-3


@CONFIGS
def test_kv_cache_equals_the_cache_free_path_across_the_window(cfg, hf_models, tmp_path):
    model = ours_from(kv, cfg, hf_models[id(cfg)], tmp_path)
    torch.manual_seed(3)
    ids = torch.randint(0, cfg["vocab_size"], (2, 45))
    with torch.no_grad():
        full = model(ids)
        cache = kv.KVCache(n_layers=cfg["n_layers"])
        model.reset_kv_cache()
        # A 3-token prompt, a 12-token chunk that crosses the window, then one at a time.
        chunks = [(0, 3), (3, 15)] + [(t, t + 1) for t in range(15, 45)]
        pieces = [model(ids[:, start:end], cache=cache) for start, end in chunks]
    assert model.current_pos == 45
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


@CONFIGS
def test_greedy_ids_equal_with_and_without_cache_and_hf_generate(cfg, hf_models, tmp_path):
    hf_model = hf_models[id(cfg)]
    torch.manual_seed(4)
    prompt = torch.randint(0, cfg["vocab_size"], (1, 6))
    new_tokens = 3 * cfg["sliding_window"]  # generation crosses the window twice
    streamed = {}
    for name, nb in (("plain", plain), ("kv", kv)):
        model = ours_from(nb, cfg, hf_model, tmp_path)
        streamed[name] = torch.cat(list(nb.generate_text_basic_stream(model, prompt,
                                                                      new_tokens)), dim=1)
    with torch.no_grad():
        reference = hf_model.generate(prompt, max_new_tokens=new_tokens, do_sample=False,
                                      eos_token_id=None)
    assert torch.equal(streamed["kv"], reference[:, prompt.shape[1]:])
    assert torch.equal(streamed["plain"], streamed["kv"])


@BOTH
def test_generation_stops_at_eos_and_at_the_context(nb, hf_models, tmp_path):
    cfg = TINY_GQA
    model = ours_from(nb, cfg, hf_models[id(cfg)], tmp_path)
    prompt = torch.randint(0, cfg["vocab_size"], (1, 4))
    tokens = [t.item() for t in nb.generate_text_basic_stream(model, prompt, 10)]
    eos = tokens[3]
    until_eos = [t.item() for t in nb.generate_text_basic_stream(model, prompt, 10,
                                                                  eos_token_id=eos)]
    assert until_eos == tokens[:tokens.index(eos)]
    if nb is kv:  # fills the context, then stops
        near_end = torch.randint(0, cfg["vocab_size"], (1, cfg["context_length"] - 2))
        assert len(list(nb.generate_text_basic_stream(model, near_end, 10))) == 2


def test_loader_ties_or_copies_the_head_and_names_bad_tensors(hf_models, tmp_path, capsys):
    cfg = TINY_GQA
    params = hub_state_dict(hf_models[id(cfg)], tmp_path)
    model = plain.Gemma3Model(cfg)
    plain.load_weights_into_gemma(model, cfg, params)
    assert "Model uses weight tying." in capsys.readouterr().out
    assert model.out_head.weight is model.tok_emb.weight

    untied = dict(params, **{"lm_head.weight": torch.randn(cfg["vocab_size"], cfg["emb_dim"])})
    model = plain.Gemma3Model(cfg)
    plain.load_weights_into_gemma(model, cfg, untied)
    assert torch.equal(model.out_head.weight, untied["lm_head.weight"])
    assert model.out_head.weight is not model.tok_emb.weight

    bad = dict(params, **{"model.layers.3.mlp.up_proj.weight": torch.zeros(7, 64)})
    with pytest.raises(ValueError, match=r"'model\.layers\.3\.mlp\.up_proj\.weight'.*\(7, 64\)"):
        plain.load_weights_into_gemma(plain.Gemma3Model(cfg), cfg, bad)
    missing = {k: v for k, v in params.items() if k != "model.layers.7.self_attn.k_norm.weight"}
    with pytest.raises(KeyError, match=r"model\.layers\.7\.self_attn\.k_norm\.weight"):
        plain.load_weights_into_gemma(plain.Gemma3Model(cfg), cfg, missing)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("gemma-tokenizer")
    path = write_gemma_tokenizer(folder)
    return plain.GemmaTokenizer(path), AutoTokenizer.from_pretrained(folder), path


TEXTS = ["Hello, world!", "  two  spaces,\ttabs and\nnew lines\n\n", "Llamas eat grass.",
         "Byte fallback: ß → ∑ 🦙 日本", "<start_of_turn>user\nhi<end_of_turn>\n", ""]
CONVERSATIONS = [
    [{"role": "user", "content": "What do llamas eat?"}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "  What do llamas eat?  "},
     {"role": "assistant", "content": "Grass and hay."},
     {"role": "user", "content": "And alpacas?"}],
]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_transformers(tokenizers, text):
    ours, theirs, _ = tokenizers
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ours.encode(text, add_special_tokens=False) == theirs.encode(
        text, add_special_tokens=False)
    assert ids[0] == ours.bos_token_id == 2
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(
        ids, skip_special_tokens=True) == text.replace("<start_of_turn>", "").replace(
        "<end_of_turn>", "")


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["one-turn", "system-multi-turn"])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_matches_transformers(tokenizers, messages, add_generation_prompt):
    ours, theirs, _ = tokenizers
    options = {"add_generation_prompt": add_generation_prompt}
    assert ours.apply_chat_template(messages, **options) == theirs.apply_chat_template(
        messages, tokenize=False, **options)
    theirs_ids = theirs.apply_chat_template(messages, tokenize=True, **options)
    theirs_ids = theirs_ids["input_ids"] if hasattr(theirs_ids, "keys") else theirs_ids
    assert ours.apply_chat_template(messages, tokenize=True, **options) == list(theirs_ids)


def test_one_message_helper_equals_the_template(tokenizers):
    ours, theirs, _ = tokenizers
    messages = CONVERSATIONS[0]
    reference = theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<bos>" + plain.apply_chat_template(messages[0]["content"]) == reference
    assert ours.encode(plain.apply_chat_template(messages[0]["content"])) == ours.encode(
        reference, add_special_tokens=False)
    assert (ours.start_of_turn_token_id, ours.end_of_turn_token_id) == (105, 106)


def test_bad_input_gives_one_clear_line(tokenizers, tmp_path, hf_models):
    for nb in (plain, kv):
        assert "unknown Gemma 3 size '1b'" in one_line_error(
            ValueError, lambda nb=nb: nb.gemma3_config("1b"))
        assert "n_heads (4) must be divisible by n_kv_groups (3)" in one_line_error(
            ValueError, lambda nb=nb: nb.Gemma3Model({**TINY_GQA, "n_kv_groups": 3}))
        assert "layer_types has 8 entries, but n_layers is 9" in one_line_error(
            ValueError, lambda nb=nb: nb.gemma3_config("270m", {**TINY_GQA, "n_layers": 9}))
    not_a_tokenizer = tmp_path / "tokenizer.json"
    for content in ("this is not JSON", '{"vocab": {"a": 0}}'):
        not_a_tokenizer.write_text(content)
        assert str(not_a_tokenizer) in one_line_error(
            ValueError, lambda: plain.GemmaTokenizer(not_a_tokenizer))
    # A real tokenizer.json, but not Gemma's: the missing special token is named.
    _, theirs, path = tokenizers
    text = path.read_text().replace("<start_of_turn>", "<other_token>")
    not_a_tokenizer.write_text(text)
    assert "no <start_of_turn> token" in one_line_error(
        ValueError, lambda: plain.GemmaTokenizer(not_a_tokenizer))

    cfg = TINY_GQA
    too_long = torch.zeros(1, cfg["context_length"] + 1, dtype=torch.long)
    for nb in (plain, kv):
        model = nb.Gemma3Model(cfg)
        assert "129 tokens exceed the context length 128" in one_line_error(
            ValueError, lambda model=model: model(too_long))
    assert "more than the context size 128" in one_line_error(
        ValueError, lambda: next(kv.generate_text_basic_stream(kv.Gemma3Model(cfg), too_long, 5)))

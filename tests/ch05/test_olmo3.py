"""ch05/13_olmo3: both notebooks against Hugging Face's Olmo3ForCausalLM.

The tiny reference has every layer kind (three sliding-window layers, one
full-attention layer with YaRN-scaled RoPE), grouped key/value heads and a
window of 8 tokens, run on sequences longer than the window.
"""

import pytest
import torch
from support.assertions import one_line_error
from support.course_imports import notebook_definitions
from support.olmo3_tiny_aya_checkpoints import (
    assert_cache_path_matches,
    OLMO3_SPECIAL_TOKENS,
    hf_olmo3_config,
    olmo3_chat_template,
    tiny_olmo3_config,
    write_olmo3_repo,
)

FOLDER = "ch05/13_olmo3"
NOTEBOOKS = {"plain": notebook_definitions(f"{FOLDER}/standalone-olmo3.ipynb"),
             "kv": notebook_definitions(f"{FOLDER}/standalone-olmo3-plus-kv-cache.ipynb")}
nb, nb_kv = NOTEBOOKS["plain"], NOTEBOOKS["kv"]
ATOL = 1e-5
TINY = tiny_olmo3_config(nb.OLMO3_CONFIG_7B)


def test_the_fake_hub_model_is_the_books_7b_shrunk():
    """The fake hub's repository (and the notebooks in the suite) use this tiny model."""
    assert tiny_olmo3_config() == TINY


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny allenai/Olmo-3-7B-Instruct folder: sharded safetensors, tokenizer.json."""
    return write_olmo3_repo(tmp_path_factory.mktemp("olmo3"), nb.OLMO3_CONFIG_7B)


@pytest.fixture(scope="module")
def hf_model(repo):
    from transformers import Olmo3ForCausalLM

    return Olmo3ForCausalLM.from_pretrained(repo, attn_implementation="eager").eval()


def load_ours(module, repo):
    model = module.Olmo3Model(TINY).eval()
    module.load_weights_into_olmo(model, TINY, module.load_sharded_safetensors(repo))
    return model


@pytest.mark.parametrize("variant", NOTEBOOKS)
def test_logits_match_hugging_face(variant, repo, hf_model):
    ours = load_ours(NOTEBOOKS[variant], repo)
    torch.manual_seed(1)
    ids = torch.randint(0, TINY["vocab_size"], (2, 40))  # 5x the sliding window
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_yarn_only_in_full_attention_layers():
    """The real 7B's RoPE: YaRN equals transformers' for full layers, plain RoPE for sliding."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = nb.OLMO3_CONFIG_7B
    hf_cfg = hf_olmo3_config({**cfg, "n_layers": 4, "layer_types": cfg["layer_types"][:4]})
    positions = torch.tensor([0, 1, 100, 4095, 8191, 8192, 30_000, 65_535])
    with torch.device("meta"):
        ours = nb.Olmo3Model({**cfg, "n_layers": 4, "layer_types": cfg["layer_types"][:4]})
    for layer_type, cos_name in [("full_attention", "cos"),
                                             ("sliding_attention", "cos_local")]:
        params = hf_cfg.rope_parameters[layer_type]
        if params["rope_type"] == "default":
            inv_freq = 1.0 / params["rope_theta"] ** (torch.arange(0, 128, 2).float() / 128)
            scale = 1.0
        else:
            inv_freq, scale = ROPE_INIT_FUNCTIONS["yarn"](hf_cfg, "cpu", layer_type=layer_type)
        angles = positions[:, None].float() * inv_freq[None]
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin = nb.compute_rope_params(
            128, cfg["rope_base"], cfg["context_length"],
            **({"attention_factor": cfg["rope_attention_factor"], "rope_type": "yarn",
                "rope_factor": cfg["rope_factor"], "rope_orig_max": cfg["rope_orig_max"]}
               if cos_name == "cos" else {}))
        torch.testing.assert_close(cos[positions], angles.cos() * scale, atol=1e-5, rtol=0)
        torch.testing.assert_close(sin[positions], angles.sin() * scale, atol=1e-5, rtol=0)
        assert getattr(ours, cos_name).shape == (cfg["context_length"], 128)
    plain_cos, _ = nb.compute_rope_params(128, cfg["rope_base"], cfg["context_length"])
    yarn_cos, _ = nb.compute_rope_params(128, cfg["rope_base"], cfg["context_length"],
                                         rope_type="yarn", rope_factor=8.0)
    assert not torch.allclose(plain_cos[30_000], yarn_cos[30_000])  # YaRN changes something


def test_kv_cache_gives_the_same_logits_and_greedy_ids(repo, hf_model):
    assert_cache_path_matches(nb, nb_kv, load_ours(nb, repo), load_ours(nb_kv, repo), hf_model,
                              TINY["vocab_size"], atol=ATOL)


def test_generation_stops_at_any_stop_token(repo):
    ours = load_ours(nb_kv, repo)
    ids = torch.tensor([[5, 6, 7]])
    first = next(nb_kv.generate_text_basic_stream(ours, ids, 5)).item()
    assert list(nb_kv.generate_text_basic_stream(ours, ids, 5, eos_token_id=[1, first])) == []


@pytest.mark.parametrize("size", ["7B", "32B"])
def test_every_size_builds_with_hugging_face_parameter_count(size):
    from transformers import Olmo3ForCausalLM

    cfg = {"7B": nb.OLMO3_CONFIG_7B, "32B": nb.OLMO3_CONFIG_32B}[size]
    assert len(cfg["layer_types"]) == cfg["n_layers"]
    with torch.device("meta"):
        ours = nb_kv.Olmo3Model(cfg)
        reference = Olmo3ForCausalLM(hf_olmo3_config(cfg))
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert count == {"7B": 7_298_011_136, "32B": 32_233_522_176}[size]


def test_tokenizer_and_chat_template_match_transformers(repo):
    from transformers import PreTrainedTokenizerFast

    ours = nb.OlmoTokenizer(repo / "tokenizer.json", eos_token_id=100_257, pad_token_id=100_277)
    reference = PreTrainedTokenizerFast(tokenizer_file=str(repo / "tokenizer.json"),
                                        chat_template=olmo3_chat_template())
    assert ours.eos_token_id == OLMO3_SPECIAL_TOKENS.index("<|endoftext|>")
    assert ours.pad_token_id == OLMO3_SPECIAL_TOKENS.index("<|pad|>")
    for text in ["The llama is a camelid.", "  spaces\tand\nlines 1234 café 🦙",
                 "<|im_start|>user\nHi<|im_end|>"]:
        ids = ours.encode(text)
        assert ids == reference.encode(text, add_special_tokens=False)
        assert ours.decode(ids) == text
    question = "What do llamas eat?"
    chat = reference.apply_chat_template([{"role": "user", "content": question}],
                                         add_generation_prompt=True, tokenize=False)
    assert nb.apply_chat_template(question) == chat
    ids = ours.encode(chat)
    assert ids[0] == OLMO3_SPECIAL_TOKENS.index("<|im_start|>")  # no BOS in front
    assert ids == reference.encode(chat, add_special_tokens=False)


def test_tokenizer_falls_back_to_the_given_ids(tmp_path):
    from support.olmo3_tiny_aya_checkpoints import write_tokenizer_json

    path = write_tokenizer_json(tmp_path / "tokenizer.json", ["<s>"], 300)
    tokenizer = nb.OlmoTokenizer(path, eos_token_id=100_257, pad_token_id=100_277)
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (100_257, 100_277)


def test_bad_input_gives_one_clear_line(repo, tmp_path):
    assert "unknown Olmo 3 model 'Olmo-3-8B'" in one_line_error(
        ValueError, lambda: nb.olmo3_config("Olmo-3-8B"))
    book_32b = {**nb.OLMO3_CONFIG_32B, "layer_types": nb.OLMO3_CONFIG_32B["layer_types"][:60]}
    assert "has 60 entries but cfg['n_layers'] is 64" in one_line_error(
        ValueError, lambda: nb_kv.Olmo3Model(book_32b))
    assert "unknown layer type" in one_line_error(ValueError, lambda: nb.Olmo3Model(
        {**TINY, "layer_types": ["sliding_attention"] * 3 + ["global"]}))

    params = nb.load_sharded_safetensors(repo)
    missing = {k: v for k, v in params.items() if k != "model.layers.2.self_attn.k_norm.weight"}
    assert "model.layers.2.self_attn.k_norm.weight" in one_line_error(
        KeyError, lambda: nb.load_weights_into_olmo(nb.Olmo3Model(TINY), TINY, missing))
    misshapen = {**params, "model.layers.1.mlp.up_proj.weight": torch.zeros(3, 4)}
    assert "model.layers.1.mlp.up_proj.weight" in one_line_error(
        ValueError, lambda: nb.load_weights_into_olmo(nb.Olmo3Model(TINY), TINY, misshapen))

    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": {"type": "BPE", "vocab": ')
    assert "is not a valid tokenizer.json" in one_line_error(
        ValueError, lambda: nb.OlmoTokenizer(broken, 1, 0))


def test_missing_head_means_tied_weights(repo):
    params = nb.load_sharded_safetensors(repo)
    del params["lm_head.weight"]
    model = nb.Olmo3Model(TINY)
    nb.load_weights_into_olmo(model, TINY, params)
    assert model.out_head.weight is model.tok_emb.weight

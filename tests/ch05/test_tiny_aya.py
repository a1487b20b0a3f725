"""ch05/15_tiny-aya: both notebooks against Hugging Face's Cohere2ForCausalLM.

The tiny reference has RoPE sliding-window layers (window 8) and a NoPE
full-attention layer, grouped key/value heads, a tied head and a logit scale
of 0.25, run on sequences longer than the window.
"""

import pytest
import torch
from support.assertions import one_line_error
from support.course_imports import notebook_definitions
from support.olmo3_tiny_aya_checkpoints import (
    assert_cache_path_matches,
    TINY_AYA_SPECIAL_TOKENS,
    hf_tiny_aya_config,
    tiny_aya_chat_template,
    tiny_tiny_aya_config,
    write_tiny_aya_repo,
    write_tokenizer_json,
)

FOLDER = "ch05/15_tiny-aya"
NOTEBOOKS = {"plain": notebook_definitions(f"{FOLDER}/standalone-tiny-aya.ipynb"),
             "kv": notebook_definitions(f"{FOLDER}/standalone-tiny-aya-plus-kv-cache.ipynb")}
nb, nb_kv = NOTEBOOKS["plain"], NOTEBOOKS["kv"]
ATOL = 1e-5
TINY = tiny_tiny_aya_config(nb.TINY_AYA_CONFIG)


def test_the_fake_hub_model_is_the_books_model_shrunk():
    """The fake hub's repository (and the notebooks in the suite) use this tiny model."""
    assert tiny_tiny_aya_config() == TINY


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny CohereLabs/tiny-aya-global folder: sharded safetensors, tokenizer.json."""
    return write_tiny_aya_repo(tmp_path_factory.mktemp("tiny-aya"), nb.TINY_AYA_CONFIG)


@pytest.fixture(scope="module")
def hf_model(repo):
    from transformers import Cohere2ForCausalLM

    return Cohere2ForCausalLM.from_pretrained(repo, attn_implementation="eager").eval()


def load_ours(module, repo):
    model = module.TinyAyaModel(TINY).eval()
    module.load_weights_into_tiny_aya(model, TINY, module.load_sharded_safetensors(repo))
    return model


def test_checkpoint_has_the_real_layout(repo):
    params = nb.load_sharded_safetensors(repo)
    assert (repo / "model.safetensors.index.json").exists()
    assert "lm_head.weight" not in params  # tied, as on the hub


@pytest.mark.parametrize("variant", NOTEBOOKS)
def test_logits_match_hugging_face(variant, repo, hf_model):
    ours = load_ours(NOTEBOOKS[variant], repo)
    assert ours.out_head.weight is ours.tok_emb.weight
    torch.manual_seed(1)
    ids = torch.randint(0, TINY["vocab_size"], (2, 40))  # 5x the sliding window
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)
        padding = torch.ones_like(ids)
        padding[1, 30:] = 0  # right padding in the second sequence
        real = padding.bool()  # a padding query may see no key at all: compare real ones
        torch.testing.assert_close(ours(ids, attention_mask=padding)[real],
                                   hf_model(ids, attention_mask=padding).logits[real],
                                   atol=ATOL, rtol=0)


def test_full_attention_layers_use_no_positions():
    """NoPE: a full-attention layer's output for the last token ignores the order of
    the tokens before it; a sliding-window (RoPE) layer's does not."""
    torch.manual_seed(3)
    x = torch.randn(1, 6, TINY["emb_dim"])
    shuffled = x[:, [2, 0, 4, 1, 3, 5]]
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    model = nb.TinyAyaModel(TINY).eval()
    with torch.no_grad():
        for block in model.trf_blocks:
            a = block.att(x, mask, model.cos, model.sin)[:, -1]
            b = block.att(shuffled, mask, model.cos, model.sin)[:, -1]
            assert torch.allclose(a, b, atol=1e-6) == (block.attn_type == "full_attention")


def test_kv_cache_gives_the_same_logits_and_greedy_ids(repo, hf_model):
    assert_cache_path_matches(nb, nb_kv, load_ours(nb, repo), load_ours(nb_kv, repo), hf_model,
                              TINY["vocab_size"], atol=ATOL)


def test_parameter_counts_match_the_book_and_hugging_face():
    from transformers import Cohere2ForCausalLM

    with torch.device("meta"):
        ours = nb_kv.TinyAyaModel(nb.TINY_AYA_CONFIG)
        reference = Cohere2ForCausalLM(hf_tiny_aya_config(nb.TINY_AYA_CONFIG))
    assert ours.out_head.weight is ours.tok_emb.weight
    total = sum(p.numel() for p in reference.parameters())
    assert nb.count_unique_parameters(ours) == 3_349_227_520 == total  # the book's figure
    assert total - ours.tok_emb.weight.numel() == 2_812_356_608  # the book's other figure
    untied = nb.TinyAyaModel({**TINY, "tie_word_embeddings": False})
    assert nb.count_unique_parameters(untied) == sum(p.numel() for p in untied.parameters())


def test_tokenizer_and_chat_template_match_transformers(repo):
    from transformers import PreTrainedTokenizerFast

    ours = nb.TinyAyaTokenizer(repo / "tokenizer.json")
    reference = PreTrainedTokenizerFast(tokenizer_file=str(repo / "tokenizer.json"),
                                        bos_token="<BOS_TOKEN>",
                                        chat_template=tiny_aya_chat_template())
    bos = TINY_AYA_SPECIAL_TOKENS.index("<BOS_TOKEN>")
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (bos, 3, 0)
    assert ours.stop_token_ids == [TINY_AYA_SPECIAL_TOKENS.index("<|END_RESPONSE|>"),
                                   TINY_AYA_SPECIAL_TOKENS.index("<|END_OF_TURN_TOKEN|>")]
    for text in ["The llama is a camelid.", "  spaces\tand\nlines 1234 café 🦙"]:
        ids = ours.encode(text)
        assert ids == reference.encode(text) and ids[0] == bos
        assert ours.decode(ids) == "<BOS_TOKEN>" + text
    question = "What do llamas eat?"
    messages = [{"role": "user", "content": question}]
    chat = reference.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert nb.apply_chat_template(question) == chat
    ids = ours.encode(nb.apply_chat_template(question))
    assert ids == reference.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
    assert ids.count(bos) == 1  # the book repository's output has two


def test_bad_input_gives_one_clear_line(repo, tmp_path):
    assert "unknown Tiny Aya model 'tiny-aya-moon'" in one_line_error(
        ValueError, lambda: nb.tiny_aya_repo_id("tiny-aya-moon"))
    assert nb.tiny_aya_repo_id("tiny-aya-fire") == "CohereLabs/tiny-aya-fire"
    assert "has 35 entries but cfg['n_layers'] is 36" in one_line_error(
        ValueError, lambda: nb_kv.TinyAyaModel(
            {**nb.TINY_AYA_CONFIG, "layer_types": nb.TINY_AYA_CONFIG["layer_types"][:35]}))

    params = nb.load_sharded_safetensors(repo)
    missing = {k: v for k, v in params.items() if k != "model.layers.3.input_layernorm.weight"}
    assert "model.layers.3.input_layernorm.weight" in one_line_error(
        KeyError, lambda: nb.load_weights_into_tiny_aya(nb.TinyAyaModel(TINY), TINY, missing))
    misshapen = {**params, "model.layers.0.self_attn.k_proj.weight": torch.zeros(64, 64)}
    assert "model.layers.0.self_attn.k_proj.weight" in one_line_error(
        ValueError, lambda: nb_kv.load_weights_into_tiny_aya(nb_kv.TinyAyaModel(TINY), TINY,
                                                             misshapen))
    untied = {**TINY, "tie_word_embeddings": False}
    assert "lm_head.weight" in one_line_error(
        KeyError, lambda: nb.load_weights_into_tiny_aya(nb.TinyAyaModel(untied), untied, params))

    broken = tmp_path / "tokenizer.json"
    broken.write_text("not json at all")
    assert "is not a valid tokenizer.json" in one_line_error(
        ValueError, lambda: nb.TinyAyaTokenizer(broken))


def test_tokenizer_without_the_named_tokens_uses_the_arguments(tmp_path):
    path = write_tokenizer_json(tmp_path / "tokenizer.json", ["<s>"], 300)
    tokenizer = nb.TinyAyaTokenizer(path, eos_token_id=7, pad_token_id=8, bos_token_id=9)
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) == (7, 8, 9)
    assert tokenizer.stop_token_ids == [7]

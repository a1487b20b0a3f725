"""ch05/11_qwen3 against Hugging Face: Qwen3 dense and MoE, the KV cache, the tokenizer.

The notebooks' definitions are byte-identical to qwen3.py and qwen3_kvcache.py
(tools/copy_forward.py checks it), so the modules are tested here and the
notebooks run in tests/test_notebooks.py. References: transformers'
`Qwen3ForCausalLM` and `Qwen3MoeForCausalLM` with random weights, saved with
`save_pretrained` in the hub's layout (per-expert tensors, shards with an index)
and read back with safetensors; `generate`; transformers' fast tokenizer for the
same tokenizer.json, with a chat template in Qwen3's format.
"""

import json

import pytest
import torch
from support.course_imports import import_course_module
from support.qwen3_checkpoints import (
    TINY_QWEN3_OVERRIDES,
    hf_qwen3_config,
    hf_qwen3_tokenizer,
    random_hf_qwen3,
    tiny_qwen3_config,
    write_qwen3_tokenizer_json,
)
from safetensors.torch import load_file

FOLDER = "ch05/11_qwen3"
qwen3 = import_course_module(f"{FOLDER}/qwen3.py")
qwen3_kv = import_course_module(f"{FOLDER}/qwen3_kvcache.py")
ATOL = 1e-5

DENSE = tiny_qwen3_config("Qwen/Qwen3-1.7B")
MOE = tiny_qwen3_config("Qwen/Qwen3-30B-A3B")
NO_HEAD_DIM = {**DENSE, "head_dim": None}  # head_dim = emb_dim / n_heads (HF: always QK-norm)
CASES = {"dense": (DENSE, False), "dense-tied": (DENSE, True), "moe": (MOE, False),
         "no-head-dim": (NO_HEAD_DIM, False)}


def read_saved(folder):
    """All tensors of the safetensors files in `folder`, as the hub's files hold them."""
    params = {}
    for file in sorted(folder.glob("*.safetensors")):
        params.update(load_file(file))
    return params


@pytest.fixture(scope="module", params=sorted(CASES))
def converted(request, tmp_path_factory):
    """(our config, HF model, our plain model, our KV model), both loaded from HF's files."""
    cfg, tied = CASES[request.param]
    hf_model = random_hf_qwen3(cfg, tie_word_embeddings=tied)
    folder = tmp_path_factory.mktemp(request.param)
    hf_model.save_pretrained(folder, max_shard_size="40KB")  # sharded, with an index
    assert (folder / "model.safetensors.index.json").exists()
    params = read_saved(folder)
    if cfg.get("num_experts"):  # the hub's layout: one tensor per expert and projection
        assert "model.layers.1.mlp.experts.5.down_proj.weight" in params
    models = []
    for module in (qwen3, qwen3_kv):
        model = module.Qwen3Model(cfg).eval()
        qwen3.load_weights_into_qwen(model, cfg, params)
        models.append(model)
    if tied:
        assert models[0].out_head.weight is models[0].tok_emb.weight
    return cfg, hf_model, *models


def test_logits_equal_hugging_face(converted):
    cfg, hf_model, ours, ours_kv = converted
    torch.manual_seed(1)
    ids = torch.randint(0, cfg["vocab_size"], (2, 37))
    with torch.no_grad():
        expected = hf_model(ids).logits
        torch.testing.assert_close(ours(ids), expected, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours_kv(ids), expected, atol=ATOL, rtol=0)


def test_kv_cache_gives_the_full_passes_logits(converted):
    cfg, _, ours, ours_kv = converted
    torch.manual_seed(2)
    ids = torch.randint(0, cfg["vocab_size"], (2, 30))
    cache = qwen3_kv.KVCache(n_layers=cfg["n_layers"])
    ours_kv.reset_kv_cache()
    with torch.no_grad():
        full = ours(ids)
        # a prompt, then single tokens, then a chunk: every path through the cache
        pieces = [ours_kv(ids[:, :17], cache=cache)]
        pieces += [ours_kv(ids[:, i:i + 1], cache=cache) for i in range(17, 22)]
        pieces.append(ours_kv(ids[:, 22:], cache=cache))
    assert ours_kv.current_pos == 30
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


def test_greedy_generation_equals_hugging_face_generate(converted):
    cfg, hf_model, ours, ours_kv = converted
    torch.manual_seed(3)
    prompt = torch.randint(0, cfg["vocab_size"], (1, 9))
    expected = hf_model.generate(prompt, max_new_tokens=20, do_sample=False,
                                 pad_token_id=0)[:, 9:]
    cached = torch.cat(list(qwen3_kv.generate_text_basic_stream(ours_kv, prompt, 20)), dim=1)
    plain = torch.cat(list(qwen3.generate_text_basic_stream(ours, prompt, 20)), dim=1)
    assert torch.equal(cached, expected)
    assert torch.equal(plain, expected)


def test_generation_stops_at_eos_and_at_the_context_length(converted):
    cfg, _, _, ours_kv = converted
    prompt = torch.randint(0, cfg["vocab_size"], (1, 5))
    first = next(qwen3_kv.generate_text_basic_stream(ours_kv, prompt, 5))
    assert list(qwen3_kv.generate_text_basic_stream(ours_kv, prompt, 5,
                                                    eos_token_id=first.item())) == []
    tokens = list(qwen3_kv.generate_text_basic_stream(ours_kv, prompt, 50, context_size=12))
    assert len(tokens) == 12 - 5 + 1  # the last one needs no room in the cache


def test_moe_routing_equals_hugging_faces_router():
    """The experts chosen and their weights, against Qwen3MoeSparseMoeBlock's router."""
    hf_model = random_hf_qwen3(MOE)
    hf_block = hf_model.model.layers[0].mlp
    ours = qwen3.MoEFeedForward(MOE).eval()
    with torch.no_grad():
        ours.gate.weight.copy_(hf_block.gate.weight)
    x = torch.randn(40, MOE["emb_dim"])
    _, hf_weights, hf_ids = hf_block.gate(x)
    ids, weights = ours.route(x)
    assert torch.equal(ids, hf_ids)
    torch.testing.assert_close(weights, hf_weights, atol=1e-6, rtol=0)
    assert len(ids.unique()) > MOE["num_experts_per_tok"]  # the tokens use several experts


def test_rmsnorm_equals_hugging_face_in_bfloat16():
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    hf_norm = Qwen3RMSNorm(64, eps=1e-6).to(torch.bfloat16)
    ours = qwen3.RMSNorm(64)
    with torch.no_grad():
        hf_norm.weight.copy_(torch.randn(64))
        ours.scale.copy_(hf_norm.weight.float())
    x = (3 * torch.randn(4, 7, 64)).to(torch.bfloat16)
    assert torch.equal(ours(x), hf_norm(x))


SIZES = ["0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B"]
DENSE_SIZES = SIZES[:-1]  # 30B-A3B: the book's figure, in the test above


def count_on_meta(model_class, cfg):
    with torch.device("meta"):
        model = model_class(cfg)
    return sum(p.numel() for p in model.parameters()), model


def test_parameter_counts_of_the_book_on_the_meta_device():
    total, model = count_on_meta(qwen3.Qwen3Model, qwen3.QWEN_CONFIG_06_B)
    assert total == 751_632_384
    assert total - model.tok_emb.weight.numel() == 596_049_920
    total, model = count_on_meta(qwen3_kv.Qwen3Model, qwen3.QWEN3_CONFIG_30B_A3B)
    assert total == 30_532_122_624
    assert total - model.tok_emb.weight.numel() == 30_220_957_696


@pytest.mark.parametrize("size", DENSE_SIZES)
def test_every_dense_size_has_as_many_parameters_as_hugging_faces_model(size):
    from transformers import Qwen3ForCausalLM

    cfg = qwen3.get_qwen_config(size)
    ours, _ = count_on_meta(qwen3.Qwen3Model, cfg)
    theirs, _ = count_on_meta(Qwen3ForCausalLM, hf_qwen3_config(cfg))
    assert ours == theirs


def test_config_keys_are_the_book_repositorys():
    dense_keys = {"vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim",
                  "head_dim", "qk_norm", "n_kv_groups", "rope_base", "dtype"}
    for size in DENSE_SIZES:
        assert set(qwen3.get_qwen_config(size)) == dense_keys
    assert set(qwen3.QWEN3_CONFIG_30B_A3B) == dense_keys - {"hidden_dim"} | {
        "num_experts", "num_experts_per_tok", "moe_hidden_dim"}
    assert qwen3_kv.QWEN3_CONFIG_30B_A3B == qwen3.QWEN3_CONFIG_30B_A3B
    state = qwen3.Qwen3Model({**DENSE, "n_layers": 1}).state_dict()
    assert {"tok_emb.weight", "trf_blocks.0.att.W_query.weight", "trf_blocks.0.att.q_norm.scale",
            "trf_blocks.0.ff.fc1.weight", "trf_blocks.0.norm1.scale", "final_norm.scale",
            "out_head.weight"} <= set(state)
    assert "cos" not in state  # the RoPE tables are computed, not stored


@pytest.mark.parametrize("cfg", [DENSE, MOE], ids=["dense", "moe"])
def test_config_from_a_repositorys_config_json(cfg):
    hf_config = json.loads(hf_qwen3_config(cfg).to_json_string())
    assert qwen3.qwen3_config_from_hf(hf_config, dtype=torch.float32) == cfg


# --- the tokenizer ---------------------------------------------------------------

TEXTS = ["Give me a short introduction to large language models.",
         "  Leading spaces, tabs\tand\nnew lines\n\n", "Zahlen 1234567 und Ümläute, café 😀 🦙",
         "code: def f(x):\n    return x ** 2  # it's", "<|im_start|>user\nhi<|im_end|>",
         "<think>\nplan\n</think>\n\nanswer", "", "don't they'll WE'VE"]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    return write_qwen3_tokenizer_json(tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_equals_hugging_faces_fast_tokenizer(tokenizer_file, text):
    ours = qwen3.Qwen3Tokenizer(tokenizer_file, apply_chat_template=False)
    reference = hf_qwen3_tokenizer(tokenizer_file)
    ids = ours.encode(text)
    assert ids == reference.encode(text, add_special_tokens=False)
    assert ours.decode(ids) == reference.decode(ids) == text


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("add_thinking", [True, False])
def test_chat_template_equals_hugging_faces(tokenizer_file, add_generation_prompt, add_thinking):
    ours = qwen3.Qwen3Tokenizer(tokenizer_file, repo_id="Qwen/Qwen3-0.6B",
                                add_generation_prompt=add_generation_prompt,
                                add_thinking=add_thinking)
    reference = hf_qwen3_tokenizer(tokenizer_file)
    for text in TEXTS[:4]:
        expected = reference.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=True,
            add_generation_prompt=add_generation_prompt, enable_thinking=add_thinking,
            return_dict=False)
        assert ours.encode(text) == list(expected)
    wrapped = ours.decode(ours.encode("Hi"))
    assert wrapped.startswith("<|im_start|>user\nHi<|im_end|>\n")
    assert wrapped.endswith("" if not add_generation_prompt else
                            "<|im_start|>assistant\n" if add_thinking else
                            "<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_tokenizer_special_ids(tokenizer_file):
    reference = hf_qwen3_tokenizer(tokenizer_file)
    chat = qwen3.Qwen3Tokenizer(tokenizer_file, repo_id="Qwen/Qwen3-0.6B")
    base = qwen3.Qwen3Tokenizer(tokenizer_file, repo_id="Qwen/Qwen3-0.6B-Base")
    assert chat.eos_token_id == reference.convert_tokens_to_ids("<|im_end|>")
    assert base.eos_token_id == chat.pad_token_id == reference.pad_token_id
    assert len(reference) <= TINY_QWEN3_OVERRIDES["vocab_size"]  # fits the tiny models


# --- bad input: one clear line each --------------------------------------------------

def one_line(excinfo):
    message = str(excinfo.value).strip("'\"")
    assert "\n" not in message
    return message


def test_unknown_model_size_lists_the_sizes():
    with pytest.raises(ValueError) as excinfo:
        qwen3.get_qwen_config("7B")
    assert "'7B'" in one_line(excinfo) and "0.6B" in one_line(excinfo)


def test_heads_that_do_not_divide():
    with pytest.raises(ValueError) as excinfo:
        qwen3.Qwen3Model({**DENSE, "n_heads": 6, "n_kv_groups": 4})
    assert "n_heads (6)" in one_line(excinfo) and "n_kv_groups (4)" in one_line(excinfo)
    with pytest.raises(ValueError) as excinfo:
        qwen3.Qwen3Model({**DENSE, "head_dim": None, "n_heads": 6, "n_kv_groups": 2})
    assert "emb_dim (64)" in one_line(excinfo)


def test_checkpoint_of_another_shape_names_the_tensor(tmp_path):
    hf_model = random_hf_qwen3({**DENSE, "hidden_dim": 80})
    params = hf_model.state_dict()
    with pytest.raises(ValueError) as excinfo:
        qwen3.load_weights_into_qwen(qwen3.Qwen3Model(DENSE), DENSE, params)
    assert "model.layers.0.mlp.gate_proj.weight" in one_line(excinfo)
    assert "(96, 64)" in one_line(excinfo) and "(80, 64)" in one_line(excinfo)
    del params["model.norm.weight"]
    with pytest.raises(KeyError) as excinfo:
        qwen3.load_weights_into_qwen(qwen3.Qwen3Model({**DENSE, "hidden_dim": 80}), DENSE, params)
    assert "model.norm.weight" in one_line(excinfo)


def test_a_file_that_is_not_a_tokenizer(tmp_path):
    garbage = tmp_path / "tokenizer.json"
    garbage.write_text("<html>not found</html>")
    with pytest.raises(ValueError) as excinfo:
        qwen3.Qwen3Tokenizer(garbage)
    assert str(garbage) in one_line(excinfo)
    assert "not a Hugging Face tokenizer" in one_line(excinfo)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model": {"type": "WordLevel", "vocab": {"a": 0},
                                           "unk_token": "a"}}))
    with pytest.raises(ValueError) as excinfo:
        qwen3.Qwen3Tokenizer(other)
    assert "not a Qwen3 tokenizer" in one_line(excinfo)
    with pytest.raises(FileNotFoundError):
        qwen3.Qwen3Tokenizer(tmp_path / "missing.json")


def test_a_prompt_longer_than_the_context():
    cfg = {**DENSE, "context_length": 16}
    prompt = torch.zeros(1, 17, dtype=torch.long)
    for module in (qwen3, qwen3_kv):
        with pytest.raises(ValueError) as excinfo:
            next(module.generate_text_basic_stream(module.Qwen3Model(cfg), prompt, 3))
        assert "17 tokens" in one_line(excinfo) and "context length of 16" in one_line(excinfo)


@pytest.mark.parametrize("setting, value, named", [
    ("MODEL", "7B", "'7B'"), ("DTYPE", "int8", "QWEN3_DTYPE"), ("DEVICE", "tpu", "QWEN3_DEVICE"),
    ("MAX_NEW_TOKENS", "many", "QWEN3_MAX_NEW_TOKENS")])
def test_chat_apps_name_a_bad_setting_in_one_line(monkeypatch, setting, value, named):
    """The apps show this message in the page (ModelAtStartup) instead of a traceback."""
    chat = import_course_module(f"{FOLDER}/qwen3-chat-interface/qwen3_chat.py")
    monkeypatch.setattr(chat, setting, value)
    with pytest.raises(ValueError) as excinfo:
        chat.load_chat_model()
    assert named in one_line(excinfo)

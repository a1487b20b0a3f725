"""Turn a Hugging Face GPT-2 into this chapter's `GPTModel`.

Hugging Face's `transformers.GPT2LMHeadModel` and our `GPTModel` compute the
same function; only the bookkeeping differs:

- names: `transformer.h.0.ln_1.weight` is our `trf_blocks.0.norm1.scale`, ...
- layout: GPT-2's linear layers are `Conv1D` modules whose weight is stored
  as [in_features, out_features], the transpose of `nn.Linear`'s weight;
- fusion: one `c_attn` projection produces queries, keys and values side by
  side, where we have three separate `W_query`, `W_key`, `W_value` layers;
- the output head: GPT-2 reuses the token embedding matrix `wte` as its
  output layer (weight tying); our model has its own `out_head`, so we copy
  the same matrix into both places.

GPT-2 also has biases in the query/key/value projections, so the converted
model uses `qkv_bias=True`. The tests in tests/ch04 check that a converted
model produces the same logits (to 1e-5) and the same greedy continuations as
the Hugging Face original, which is our proof that the architectures match.

Only `torch` is needed here, not `transformers`: the functions read the
model's `config` attributes and its `state_dict()`.
"""

from gpt import GPTModel

# Both names mean the tanh approximation of GELU, the one our GELU computes.
TANH_GELU_NAMES = {"gelu_new", "gelu_pytorch_tanh"}
LAYER_NORM_EPS = 1e-5  # the eps our LayerNorm uses


def gpt_config_from_hf(hf_config, drop_rate=0.0):
    """Map a `transformers.GPT2Config` to this chapter's config dictionary.

    `drop_rate` defaults to 0.0: converted models are usually used for
    inference (or as a reference), where dropout must not change the output.
    Raises ValueError for GPT-2 variants that our `GPTModel` cannot express.
    """
    _check_supported(hf_config)
    return {
        "vocab_size": hf_config.vocab_size,
        "context_length": hf_config.n_positions,
        "emb_dim": hf_config.n_embd,
        "n_heads": hf_config.n_head,
        "n_layers": hf_config.n_layer,
        "drop_rate": drop_rate,
        "qkv_bias": True,
    }


def _check_supported(hf_config):
    """Refuse configurations whose model would compute something else than ours."""
    problems = []
    if hf_config.activation_function not in TANH_GELU_NAMES:
        problems.append(f"activation_function={hf_config.activation_function!r} "
                        f"(ours is the tanh GELU: {sorted(TANH_GELU_NAMES)})")
    if hf_config.layer_norm_epsilon != LAYER_NORM_EPS:
        problems.append(f"layer_norm_epsilon={hf_config.layer_norm_epsilon} "
                        f"(ours is {LAYER_NORM_EPS})")
    if hf_config.n_inner not in (None, 4 * hf_config.n_embd):
        problems.append(f"n_inner={hf_config.n_inner} (ours is 4 * n_embd)")
    if not hf_config.scale_attn_weights or hf_config.scale_attn_by_inverse_layer_idx:
        problems.append("attention scores must be scaled by 1/sqrt(head_dim) only")
    if problems:
        raise ValueError("this GPT-2 configuration differs from GPTModel: " + "; ".join(problems))


class GPT2Tensors(dict):
    """GPT-2 tensors by name; looking up a missing one raises an error that names it."""

    def __missing__(self, name):
        raise ValueError(f"the GPT-2 weights have no tensor named {name!r}")


def convert_hf_state_dict(hf_state_dict):
    """Rename, split and transpose GPT-2 tensors into `GPTModel`'s state_dict layout.

    Accepts the state_dict of a `GPT2LMHeadModel` (keys start with
    "transformer."), of a bare `GPT2Model`, or the tensors of the hub's
    `model.safetensors` file (the same names, without the prefix). Without an "lm_head.weight" the
    output head gets the token embedding matrix, which is what GPT-2's weight
    tying means anyway.
    """
    hf = GPT2Tensors((key.removeprefix("transformer."), tensor)
                     for key, tensor in hf_state_dict.items())
    ours = {
        "tok_emb.weight": hf["wte.weight"],
        "pos_emb.weight": hf["wpe.weight"],
        "final_norm.scale": hf["ln_f.weight"],
        "final_norm.shift": hf["ln_f.bias"],
        "out_head.weight": hf.get("lm_head.weight", hf["wte.weight"]),
    }
    for i in range(_count_blocks(hf)):
        ours.update(_convert_block(hf, i))
    return ours


def _count_blocks(hf):
    return len({key.split(".")[1] for key in hf if key.startswith("h.")})


def _convert_block(hf, i):
    """One transformer block: GPT-2 names h.<i>.* -> our trf_blocks.<i>.*"""
    src, dst = f"h.{i}.", f"trf_blocks.{i}."
    # c_attn's weight is [emb, 3 * emb]: the query, key and value columns side by side
    q_w, k_w, v_w = hf[src + "attn.c_attn.weight"].chunk(3, dim=1)
    q_b, k_b, v_b = hf[src + "attn.c_attn.bias"].chunk(3, dim=0)
    return {
        dst + "norm1.scale": hf[src + "ln_1.weight"],
        dst + "norm1.shift": hf[src + "ln_1.bias"],
        dst + "att.W_query.weight": q_w.T,
        dst + "att.W_query.bias": q_b,
        dst + "att.W_key.weight": k_w.T,
        dst + "att.W_key.bias": k_b,
        dst + "att.W_value.weight": v_w.T,
        dst + "att.W_value.bias": v_b,
        dst + "att.out_proj.weight": hf[src + "attn.c_proj.weight"].T,
        dst + "att.out_proj.bias": hf[src + "attn.c_proj.bias"],
        dst + "norm2.scale": hf[src + "ln_2.weight"],
        dst + "norm2.shift": hf[src + "ln_2.bias"],
        dst + "ff.layers.0.weight": hf[src + "mlp.c_fc.weight"].T,
        dst + "ff.layers.0.bias": hf[src + "mlp.c_fc.bias"],
        dst + "ff.layers.2.weight": hf[src + "mlp.c_proj.weight"].T,
        dst + "ff.layers.2.bias": hf[src + "mlp.c_proj.bias"],
    }


def load_hf_gpt2_weights(model, hf_state_dict):
    """Copy a GPT-2 state_dict (Hugging Face names) into `model`, in place.

    `model` must be a `GPTModel` with qkv_bias=True and the same sizes;
    PyTorch's `load_state_dict` names any tensor whose shape differs. The
    causal masks are not weights, so they are the only keys allowed to be
    missing; a different number of blocks is an error.
    """
    converted = convert_hf_state_dict(hf_state_dict)
    result = model.load_state_dict(converted, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith(".att.mask")]
    if missing or result.unexpected_keys:
        raise ValueError(
            "GPT-2 weights do not fit this GPTModel: "
            f"missing {missing}, unexpected {result.unexpected_keys}"
        )
    return model


def gpt_model_from_hf(hf_model, drop_rate=0.0):
    """Build a `GPTModel` holding the weights of a `transformers.GPT2LMHeadModel`.

    The new model lives on the CPU in eval mode (like a freshly loaded Hugging
    Face model); move it with `.to(device)`.
    """
    cfg = gpt_config_from_hf(hf_model.config, drop_rate=drop_rate)
    model = GPTModel(cfg)
    load_hf_gpt2_weights(model, hf_model.state_dict())
    return model.eval()

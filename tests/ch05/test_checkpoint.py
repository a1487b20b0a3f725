"""Saving and loading model + optimizer state (section 5.4)."""

import pytest
import torch
from support.course_imports import import_course_module

ch05 = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
ch05_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")

CONFIG = {**ch05.MODEL_CONFIGS["tiny"], "context_length": 16, "vocab_size": 97}


def make_batches(n):
    generator = torch.Generator().manual_seed(5)
    return [(torch.randint(0, 97, (2, 16), generator=generator),
             torch.randint(0, 97, (2, 16), generator=generator)) for _ in range(n)]


def training_step(model, optimizer, batch):
    """One step, with dropout's random draws seeded so both runs see the same masks."""
    torch.manual_seed(99)
    model.train()
    optimizer.zero_grad()
    loss = ch05_utils.calc_loss_batch(*batch, model, "cpu")
    loss.backward()
    optimizer.step()
    return loss.item()


def fresh_model_and_optimizer(seed):
    torch.manual_seed(seed)
    model = pc.GPTModel(CONFIG)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)


def test_resumed_training_continues_exactly(tmp_path):
    batches = make_batches(4)
    model, optimizer = fresh_model_and_optimizer(seed=1)
    for batch in batches[:3]:
        training_step(model, optimizer, batch)
    ch05_utils.save_checkpoint(tmp_path / "ckpt.pth", model, optimizer, CONFIG)
    uninterrupted = [training_step(model, optimizer, batches[3]) for _ in range(2)]

    # different seed: the fresh weights differ until the checkpoint overwrites them
    resumed_model, resumed_optimizer = fresh_model_and_optimizer(seed=2)
    ch05_utils.load_checkpoint(tmp_path / "ckpt.pth", resumed_model, resumed_optimizer)
    resumed = [training_step(resumed_model, resumed_optimizer, batches[3]) for _ in range(2)]

    assert resumed == uninterrupted  # exactly, not approximately


def test_checkpoint_loads_with_weights_only_and_keeps_config(tmp_path):
    model, optimizer = fresh_model_and_optimizer(seed=1)
    path = tmp_path / "nested" / "ckpt.pth"
    ch05_utils.save_checkpoint(path, model, optimizer, CONFIG)

    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"model_state_dict", "optimizer_state_dict", "config"}
    assert ch05_utils.read_checkpoint_config(path) == CONFIG
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pth"]  # no temp file left


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    model, _ = fresh_model_and_optimizer(seed=1)

    def broken_save(obj, f):
        raise OSError("disk full")

    monkeypatch.setattr(ch05.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ch05_utils.save_checkpoint(tmp_path / "ckpt.pth", model)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_config_names_the_differing_shapes(tmp_path):
    model, _ = fresh_model_and_optimizer(seed=1)
    ch05_utils.save_checkpoint(tmp_path / "ckpt.pth", model)

    other = pc.GPTModel({**CONFIG, "emb_dim": 16})
    with pytest.raises(ValueError) as excinfo:
        ch05_utils.load_checkpoint(tmp_path / "ckpt.pth", other)
    message = str(excinfo.value)
    assert "tok_emb.weight: checkpoint (97, 32), model (97, 16)" in message
    assert "out_head.weight" in message

    deeper = pc.GPTModel({**CONFIG, "n_layers": 3})
    with pytest.raises(ValueError, match=r"trf_blocks\.2\.att\.W_query\.weight: missing"):
        ch05_utils.load_checkpoint(tmp_path / "ckpt.pth", deeper)


def test_optimizer_state_must_be_present_when_asked_for(tmp_path):
    model, optimizer = fresh_model_and_optimizer(seed=1)
    ch05_utils.save_checkpoint(tmp_path / "ckpt.pth", model)  # model only
    ch05_utils.load_checkpoint(tmp_path / "ckpt.pth", model)  # fine without an optimizer
    with pytest.raises(ValueError, match="no optimizer state"):
        ch05_utils.load_checkpoint(tmp_path / "ckpt.pth", model, optimizer)
    with pytest.raises(ValueError, match="no stored model configuration"):
        ch05_utils.read_checkpoint_config(tmp_path / "ckpt.pth")

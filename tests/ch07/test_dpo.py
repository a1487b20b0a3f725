"""ch07/04_preference-tuning-with-dpo: the DPO loss, the pair collation and a short run.

The definitions are executed from the notebook itself (their home), so the tests check the
code a reader runs.
"""

import math

import pytest
import torch
from support.course_imports import import_course_module, notebook_definitions

FOLDER = "ch07/04_preference-tuning-with-dpo"
chapter = import_course_module(f"{FOLDER}/previous_chapters.py")
dpo = notebook_definitions(
    f"{FOLDER}/dpo-from-scratch.ipynb",
    ["PreferenceDataset", "preference_collate_fn", "compute_logprobs", "compute_dpo_loss",
     "compute_dpo_loss_batch", "compute_dpo_loss_loader", "evaluate_dpo_loss_loader",
     "train_model_dpo_simple"],
)


def test_logprobs_equal_a_direct_gather():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 6), generator=generator)
    mask = torch.rand(3, 6, generator=generator) > 0.3
    mask[:, 1] = True  # every row scores at least one token

    expected = []
    for b in range(3):
        picked = [torch.log_softmax(logits[b, t], dim=-1)[labels[b, t + 1]]
                  for t in range(5) if mask[b, t + 1]]
        expected.append(torch.stack(picked).mean())
    torch.testing.assert_close(dpo.compute_logprobs(logits, labels, mask), torch.stack(expected))

    everything = torch.stack([torch.log_softmax(logits[b, :-1], -1)
                              .gather(-1, labels[b, 1:, None]).mean() for b in range(3)])
    torch.testing.assert_close(dpo.compute_logprobs(logits, labels), everything)


def test_dpo_loss_matches_the_paper_formula():
    generator = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (torch.randn(5, generator=generator, dtype=torch.float64) for _ in range(4))
    beta = 0.1
    loss, chosen_reward, rejected_reward = dpo.compute_dpo_loss(pc, pr, rc, rr, beta=beta)
    # -log sigma(beta * (log pi(yw)/pi_ref(yw) - log pi(yl)/pi_ref(yl))), averaged
    per_pair = [-math.log(1 / (1 + math.exp(-beta * ((a - c) - (b - d)))))
                for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(),
                                      strict=True)]
    expected = sum(per_pair) / len(per_pair)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(chosen_reward, (beta * (pc - rc)).mean())
    torch.testing.assert_close(rejected_reward, (beta * (pr - rr)).mean())


def test_loss_is_log_two_when_policy_equals_reference():
    same = torch.tensor([-1.5, -0.2])
    loss, chosen, rejected = dpo.compute_dpo_loss(same, same - 1, same, same - 1)
    assert loss.item() == pytest.approx(math.log(2))
    assert chosen.item() == rejected.item() == 0


PAIRS = [
    {"prompt": [1, 2, 3], "chosen": [1, 2, 3, 10, 11], "rejected": [1, 2, 3, 20]},
    {"prompt": [4, 5], "chosen": [4, 5, 30, 31, 32, 33], "rejected": [4, 5, 40, 41]},
]


def test_collate_pads_and_masks_the_prompt():
    batch = dpo.preference_collate_fn(PAIRS, pad_token_id=99)
    assert batch["chosen"].tolist() == [[1, 2, 3, 10, 11, 99], [4, 5, 30, 31, 32, 33]]
    assert batch["rejected"].tolist() == [[1, 2, 3, 20, 99, 99], [4, 5, 40, 41, 99, 99]]
    assert batch["chosen_mask"].int().tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert batch["rejected_mask"].int().tolist() == [[0, 0, 0, 1, 0, 0], [0, 0, 1, 1, 0, 0]]
    assert [p.tolist() for p in batch["prompt"]] == [[1, 2, 3], [4, 5]]


def test_collate_can_keep_the_prompt_and_truncates():
    batch = dpo.preference_collate_fn(PAIRS, pad_token_id=99, mask_prompt_tokens=False,
                                      allowed_max_length=4)
    assert batch["chosen"].tolist() == [[1, 2, 3, 10], [4, 5, 30, 31]]
    assert batch["chosen_mask"].all()
    assert batch["rejected_mask"].int().tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]


def test_training_widens_the_margin_and_leaves_the_reference_alone(capsys):
    torch.manual_seed(0)
    config = {"vocab_size": 50, "context_length": 16, "emb_dim": 16, "n_heads": 2,
              "n_layers": 1, "drop_rate": 0.0, "qkv_bias": True}
    policy = chapter.GPTModel(config)
    reference = chapter.GPTModel(config)
    reference.load_state_dict(policy.state_dict())
    reference.eval().requires_grad_(False)
    before = {k: v.clone() for k, v in reference.state_dict().items()}

    pairs = [{"prompt": [1, 2], "chosen": [1, 2, 3 + i, 7], "rejected": [1, 2, 20 + i, 30]}
             for i in range(8)]
    loader = torch.utils.data.DataLoader(pairs, batch_size=4, collate_fn=dpo.preference_collate_fn)
    first = next(iter(loader))
    loss, chosen, rejected = dpo.compute_dpo_loss_batch(first, policy, reference, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)

    class TinyTokenizer:  # the loop prints a sample of ids below 50
        def encode(self, text, allowed_special=None):
            return [1, 2]

        def decode(self, ids):
            return " ".join(map(str, ids))

    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    tracking = dpo.train_model_dpo_simple(policy, reference, loader, loader, optimizer,
                                          num_epochs=4, beta=0.1, eval_freq=3, eval_iter=1,
                                          start_context="x", tokenizer=TinyTokenizer())
    assert tracking["train_losses"][-1] < tracking["train_losses"][0] - 0.05
    assert tracking["train_margins"][-1] > tracking["train_margins"][0] + 0.05
    assert all(torch.equal(before[k], v) for k, v in reference.state_dict().items())
    assert "Train reward margin" in capsys.readouterr().out

"""Appendix E: low-rank adaptation (LoRA) layers.

Copied from the course's code (home: the chapter 7 exercise solutions, which
introduce them before appendix E does); `tools/copy_forward.py` keeps every
definition identical to its home.
"""

import math

import torch


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LoRALayer
class LoRALayer(torch.nn.Module):
    """The low-rank update (alpha / rank) * x A B that LoRA adds to a frozen layer.

    A (in_dim x rank) starts random and B (rank x out_dim) starts at zero, so the
    update is zero until training changes B.
    """

    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.A = torch.nn.Parameter(torch.empty(in_dim, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha
        self.scale = alpha / rank  # the printed book uses alpha alone (see above)

    def forward(self, x):
        return self.scale * (x @ self.A @ self.B)

    def extra_repr(self):  # shown by print(model)
        in_dim, out_dim = self.A.shape[0], self.B.shape[1]
        return f"in_dim={in_dim}, out_dim={out_dim}, rank={self.rank}, alpha={self.alpha}"


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LinearWithLoRA
class LinearWithLoRA(torch.nn.Module):
    """An nn.Linear `linear` plus a LoRA update of the given rank and alpha."""

    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        # A and B live where the layer lives (CPU, GPU, or "meta" when only counting)
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha).to(
            device=linear.weight.device, dtype=linear.weight.dtype
        )

    def forward(self, x):
        return self.linear(x) + self.lora(x)


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::replace_linear_with_lora
def replace_linear_with_lora(model, rank, alpha):
    """Wrap every nn.Linear inside `model` (at any depth) in a LinearWithLoRA, in place."""
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)

"""The chapter 7 exercises as options of one script.

    python exercise_experiments.py                                        # the chapter's run
    python exercise_experiments.py --exercise-solution phi3_prompt        # exercise 7.1
    python exercise_experiments.py --exercise-solution mask_instructions  # exercise 7.2
    python exercise_experiments.py --exercise-solution alpaca_52k         # exercise 7.3
    python exercise_experiments.py --exercise-solution lora               # exercise 7.4
    python exercise_experiments.py --exercise-solution lora --test-mode   # seconds, for tests

Each runs the chapter's finetuning (gpt_instruction_finetuning.py, with the same
flags and the book's defaults) with one change; `baseline` (the default, as in the
book's script) runs it unchanged, for comparison. Each writes the model, the test
answers and the loss plot with the exercise's name in the file names, e.g.
`instruction-data-with-response-lora.json` for `ollama_evaluate.py --file`:

- baseline: the chapter's finetuning as it is (files named `...-baseline...`, so
  they sit beside the exercises' and never replace the chapter script's).
- phi3_prompt: Microsoft Phi-3's prompt style (`<|user|>` ... `<|assistant|>:`)
  instead of Alpaca's; shorter prompts, so training is a little faster.
- mask_instructions: the prompt's tokens are masked (-100) in the targets, so the
  loss covers only the answer.
- alpaca_52k: Stanford Alpaca's 52,002 entries instead of 1,100 (batch size 4 and
  at most 512 tokens per entry, as in the book's solution, to fit in memory).
- lora: the pretrained weights stay frozen; only LoRA layers of rank 16
  (alpha 16) on every nn.Linear are trained (appendix E).

The definitions below are copied unchanged from exercise-solutions.ipynb (their
home); `LoRALayer`, `LinearWithLoRA` and `replace_linear_with_lora` are appendix
E's.
"""

import math

import torch
from gpt_instruction_finetuning import (
    INSTRUCTION_DATA_SHA256,
    INSTRUCTION_DATA_URL,
    SETTINGS,
    InstructionDataset,
    build_parser,
    custom_collate_fn,
    data_folder,
    download_and_load_file,
    format_input,
    output_files,
    run,
)
from script_helpers import (
    positive_float,
    positive_int,
    refuse_to_replace,
)

# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::ALPACA_DATA_URL
ALPACA_DATA_URL = (
    "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/main/alpaca_data.json"
)
EXERCISES = ("baseline", "phi3_prompt", "mask_instructions", "alpaca_52k", "lora")
# The chapter script's settings (gpt_instruction_finetuning.SETTINGS) and these.
EXERCISE_SETTINGS = {
    "exercise_solution": ("--exercise-solution", EXERCISES, "baseline",
                          "which exercise to run (baseline: the chapter's finetuning)"),
    "lora_rank": ("--lora-rank", positive_int, 16, "rank of the LoRA layers (7.4)"),
    "lora_alpha": ("--lora-alpha", positive_float, 16, "LoRA scaling alpha (7.4)"),
}


# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::format_input_phi
def format_input_phi(entry):
    """Phi-3's prompt style: the instruction (and input) after a `<|user|>` line."""
    instruction_text = f"<|user|>\n{entry['instruction']}"
    input_text = f"\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::InstructionDatasetPhi
class InstructionDatasetPhi(InstructionDataset):
    """`InstructionDataset` with the Phi-3 prompt and an `<|assistant|>:` answer."""

    def __init__(self, data, tokenizer):
        self.data = data
        self.encoded_texts = []
        for entry in data:
            full_text = format_input_phi(entry) + f"\n<|assistant|>:\n{entry['output']}"
            self.encoded_texts.append(tokenizer.encode(full_text))


# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::extract_response_phi
def extract_response_phi(response_text, input_text):
    """The answer after a Phi-3 prompt: what follows `<|assistant|>:`, up to an end-of-text."""
    generated = response_text[len(input_text):]
    header, found, answer = generated.partition("<|assistant|>:")
    answer = answer if found else header
    return answer.split("<|endoftext|>")[0].strip()


# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::InstructionDatasetWithMasking
class InstructionDatasetWithMasking(InstructionDataset):
    """Items are (prompt length, token ids), so the collate function can mask the prompt."""

    def __init__(self, data, tokenizer):
        self.data = data
        self.encoded_texts = []
        for entry in data:
            prompt_ids = tokenizer.encode(format_input(entry))
            response_ids = tokenizer.encode(f"\n\n### Response:\n{entry['output']}")
            self.encoded_texts.append((len(prompt_ids), prompt_ids + response_ids))


# Copied from ch07/01_main-chapter-code/exercise-solutions.ipynb::custom_collate_with_masking
def custom_collate_with_masking(batch, pad_token_id=50256, ignore_index=-100,
                                allowed_max_length=None, device="cpu"):
    """`custom_collate_fn` for (prompt length, token ids) items, prompt targets masked too.

    Target i is token i + 1, so the targets of the prompt's tokens are
    targets[:prompt_length - 1]: the model is then trained only to produce the
    answer (and the end-of-text token after it), not to repeat the prompt.
    """
    inputs, targets = custom_collate_fn([item for _, item in batch], pad_token_id,
                                        ignore_index, allowed_max_length, device)
    for row, (prompt_length, _) in enumerate(batch):
        targets[row, :prompt_length - 1] = ignore_index
    return inputs, targets


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


def freeze_and_add_lora(model, rank=16, alpha=16):
    """Freeze every pretrained weight, then add trainable LoRA layers to every nn.Linear."""
    for param in model.parameters():
        param.requires_grad = False
    replace_linear_with_lora(model, rank=rank, alpha=alpha)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"Trainable parameters with LoRA: {trainable:,}")
    return model


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = build_parser("The chapter 7 exercises: finetuning GPT-2 with one change each. "
                          "The other defaults are the book's run.",
                          {**SETTINGS, **EXERCISE_SETTINGS})
    settings = vars(parser.parse_args(argv))
    if settings["exercise_solution"] == "alpaca_52k":
        # the book's solution: 52k entries, some long, need smaller batches
        parser.set_defaults(batch_size=4)
        settings = vars(parser.parse_args(argv))
    names = output_files(settings["model_size"], settings["test_mode"],
                         suffix(settings["exercise_solution"]))
    refuse_to_replace(parser, settings["output_dir"], names, settings["overwrite"])
    return settings


def suffix(exercise_solution):
    """The exercise's part of the output file names (`mask_instructions`: `mask-instructions`)."""
    return exercise_solution.replace("_", "-")


def main(settings):
    """Run the chapter's finetuning with the exercise's one change (parse_args's settings)."""
    exercise = settings["exercise_solution"]
    data_dir = data_folder(settings["data_dir"])
    options = {"suffix": suffix(exercise)}
    if exercise == "alpaca_52k":
        data = download_and_load_file(data_dir / "alpaca_data.json", ALPACA_DATA_URL)
        options["allowed_max_length"] = 512
    else:
        data = download_and_load_file(data_dir / "instruction-data.json", INSTRUCTION_DATA_URL,
                                      sha256=INSTRUCTION_DATA_SHA256)
    if exercise == "phi3_prompt":
        options.update(dataset_class=InstructionDatasetPhi, format_prompt=format_input_phi,
                       extract=extract_response_phi)
    elif exercise == "mask_instructions":
        options.update(dataset_class=InstructionDatasetWithMasking,
                       collate_fn=custom_collate_with_masking)
    elif exercise == "lora":
        rank, alpha = settings["lora_rank"], settings["lora_alpha"]
        options["prepare_model"] = lambda model: freeze_and_add_lora(model, rank, alpha)
    return run(settings, data, **options)


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()

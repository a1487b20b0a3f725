"""Chapter 2: the sliding-window dataset and data loader for GPT-2 token ids.

Copied from the chapter's code (home: ch02/01_main-chapter-code/ch02.ipynb);
`tools/copy_forward.py` keeps every definition identical to its home.
"""

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset


# Copied from ch02/01_main-chapter-code/ch02.ipynb::GPTDatasetV1
class GPTDatasetV1(Dataset):
    """Input/target pairs cut from one long text with a sliding window.

    Each input is `max_length` token ids; its target is the same window moved
    one token to the right, so position i of the target is the token that
    follows position i of the input.
    """

    def __init__(self, txt, tokenizer, max_length, stride):
        self.input_ids = []
        self.target_ids = []

        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})

        for start in range(0, len(token_ids) - max_length, stride):
            window = token_ids[start:start + max_length + 1]
            self.input_ids.append(torch.tensor(window[:-1]))
            self.target_ids.append(torch.tensor(window[1:]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


# Copied from ch02/01_main-chapter-code/ch02.ipynb::create_dataloader_v1
def create_dataloader_v1(txt, batch_size=4, max_length=256, stride=128,
                         shuffle=True, drop_last=True, num_workers=0):
    """Tokenize `txt` with GPT-2's BPE and serve sliding-window batches."""
    tokenizer = tiktoken.get_encoding("gpt2")
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )

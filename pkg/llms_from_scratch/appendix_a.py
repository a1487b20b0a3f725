"""Appendix A: the toy dataset and the small neural network of the PyTorch introduction.

Copied from appendix-A/01_main-chapter-code (home: code-part1.ipynb);
`tools/copy_forward.py` keeps every definition identical to its home.
"""

import torch
from torch.utils.data import Dataset


# Copied from appendix-A/01_main-chapter-code/DDP-script.py::ToyDataset
class ToyDataset(Dataset):
    def __init__(self, X, y):
        self.features = X
        self.labels = y

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


# Copied from appendix-A/01_main-chapter-code/DDP-script.py::NeuralNetwork
class NeuralNetwork(torch.nn.Module):
    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(
            # 1st hidden layer
            torch.nn.Linear(num_inputs, 30),
            torch.nn.ReLU(),
            # 2nd hidden layer
            torch.nn.Linear(30, 20),
            torch.nn.ReLU(),
            # output layer
            torch.nn.Linear(20, num_outputs),
        )

    def forward(self, x):
        logits = self.layers(x)
        return logits

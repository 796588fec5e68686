"""Model tests use tiny tensors: one intra-op thread avoids oversubscription on shared CPUs
(measured: test_reversible.py 20 s with 2 threads under load vs 4 s with 1)."""

import torch

torch.set_num_threads(1)

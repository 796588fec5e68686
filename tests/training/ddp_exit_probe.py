"""Run under torchrun by test_distributed_exit.py: DDP steps, an object gather as the last collective, then
sv_toolkit's shutdown; prints this rank's leftover gloo threads as JSON and exits at once (the window in
which a gloo worker still holding Python-owned buffers used to abort the process at interpreter exit)."""
import json
import os
import sys

import torch
from torch import nn

from sv_toolkit.training.distributed import env_from_torchrun, gather_objects, gloo_threads, init_distributed, \
    shutdown, wrap_ddp

env = env_from_torchrun()
init_distributed(env, torch.device("cpu"))
torch.manual_seed(0)
ddp = wrap_ddp(nn.Linear(8, 8), env, torch.device("cpu"))
for _ in range(3):
    ddp(torch.randn(4, 8)).sum().backward()
ranks = gather_objects(env, {"rank": env.rank, "payload": list(range(1000))})
assert [r["rank"] for r in ranks] == list(range(env.world_size))
if sys.argv[1:] == ["--keep-ddp"]:  # what the training engine did before: the wrapper outlives shutdown
    keep = ddp
else:
    del ddp
shutdown(env)
# one write() of the whole line: both ranks share torchrun's stdout, and print() may write the text and its
# newline separately, so that the two ranks' lines interleave (seen 2 times in 20 runs)
os.write(1, (json.dumps({"rank": env.rank, "gloo_threads": gloo_threads()}) + "\n").encode())
if sys.argv[1:] == ["--keep-ddp"]:
    os._exit(0)  # skip interpreter finalisation, where the live threads could abort this rank

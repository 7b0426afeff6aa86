"""One training step of a tiny deterministic GRAM, single-process or under torchrun (gloo).

Run by tests/model/test_model.py: `torchrun --nproc_per_node 2 tests/model/ddp_step.py OUT` takes
the two halves of a fixed batch on two ranks; `python tests/model/ddp_step.py OUT` the whole batch.
Writes the updated parameters to OUT (safetensors) from rank 0.
"""

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from model.config import ModelConfig, TrainConfig  # noqa: E402
from model.loss import step_loss  # noqa: E402
from model.network import GRAM  # noqa: E402


def main(out: str) -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    cfg = ModelConfig(vocab_size=5, seq_len=9, out_len=9, hidden=16, heads=2, K=2, T=2, puzzle_tokens=2,
                      mode="deterministic")  # fmt: skip
    torch.manual_seed(0)
    model = GRAM(cfg)
    x = torch.randint(1, 5, (8, 9), generator=torch.Generator().manual_seed(1))
    y = torch.randint(1, 5, (8, 9), generator=torch.Generator().manual_seed(2))
    x, y = x.chunk(world)[rank], y.chunk(world)[rank]
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    res = net(model.initial_carry(len(x)), x, y)
    loss, _, _ = step_loss(res, y, TrainConfig(), beta=0.0)
    loss.backward()
    opt.step()
    if rank == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    if world > 1:
        dist.barrier()  # no rank tears gloo down while the other still talks to it
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

# A small but real PyTorch training job (docs/examples/task.yaml, `make demo`): a
# two-layer MLP learns a 2-D function from noisy samples with Adam in mini-batches;
# it prints the device it trains on, the training and held-out loss falling, and
# writes a checkpoint (model, optimizer, step, losses) to out/model.pt.
# Debian's python3-torch has no CUDA: it trains on the CPU there, and says so.
#   python3 train.py [--steps N] [--width W] [--out DIR]
import argparse
import math
import os
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--out", default="out")
args = parser.parse_args()

torch.manual_seed(0)
if torch.cuda.is_available():
    device = torch.device("cuda")
    where = "cuda (%s)" % torch.cuda.get_device_name(0)
else:
    device = torch.device("cpu")
    why = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA device usable"
    where = "cpu, %d thread(s) (%s; CUDA_VISIBLE_DEVICES=%s)" % (
        torch.get_num_threads(), why, os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
print("torch %s, training on %s" % (torch.__version__, where), flush=True)
print("lease %s, %s GPU(s) per node" % (os.environ.get("GPUNET_LEASE_ID", "-"),
                                       os.environ.get("GPUNET_GPUS_PER_NODE", "-")), flush=True)


def target(x):
    return torch.sin(2 * math.pi * x[:, :1]) * torch.cos(math.pi * x[:, 1:]) + 0.5 * x[:, :1] * x[:, 1:]


x_train = torch.rand(8192, 2) * 2 - 1
y_train = target(x_train) + 0.05 * torch.randn(8192, 1)
x_val = torch.rand(1024, 2) * 2 - 1
y_val = target(x_val)
x_train, y_train, x_val, y_val = (t.to(device) for t in (x_train, y_train, x_val, y_val))

model = torch.nn.Sequential(
    torch.nn.Linear(2, args.width), torch.nn.Tanh(),
    torch.nn.Linear(args.width, args.width), torch.nn.Tanh(),
    torch.nn.Linear(args.width, 1)).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
print("model: %d parameters; %d training samples, %d held out; %d steps of %d" % (
    sum(p.numel() for p in model.parameters()), len(x_train), len(x_val), args.steps, args.batch), flush=True)

start = time.monotonic()
history = []
every = max(1, args.steps // 10)
for step in range(1, args.steps + 1):
    batch = torch.randint(0, len(x_train), (args.batch,), device=device)
    loss = torch.nn.functional.mse_loss(model(x_train[batch]), y_train[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    if step % every == 0 or step == args.steps:
        with torch.no_grad():
            val = torch.nn.functional.mse_loss(model(x_val), y_val).item()
        history.append((step, loss.item(), val))
        print("step %5d  loss %.5f  val_loss %.5f  %5.1f s" % (step, loss.item(), val, time.monotonic() - start),
              flush=True)

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "model.pt")
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": args.steps,
            "history": history, "width": args.width}, path)
print("wrote %s (%d bytes); val_loss %.5f -> %.5f" % (path, os.path.getsize(path), history[0][2], history[-1][2]),
      flush=True)

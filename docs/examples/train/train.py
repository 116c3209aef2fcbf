# A small PyTorch training job (docs/examples/task.yaml): fits y = 3x + 1, prints
# the loss falling and writes a checkpoint to out/model.pt. On the CPU where there
# is no GPU, and it says which.
import argparse
import os

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
args = parser.parse_args()

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"training on {device}", flush=True)
x = torch.randn(1024, 1, device=device)
y = 3 * x + 1
model = torch.nn.Linear(1, 1).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(1, args.steps + 1):
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(f"step {step} loss {loss.item():.6f}", flush=True)
os.makedirs("out", exist_ok=True)
torch.save(model.state_dict(), "out/model.pt")
print("wrote out/model.pt", flush=True)

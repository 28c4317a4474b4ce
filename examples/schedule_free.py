"""Schedule-Free AdamW (Defazio et al. 2024): no learning-rate schedule; the parameters
hold the gradient point y while training and the averaged point x after optimizer.eval().

    optimlab.schedule_free_adamw(...) == schedule_free(chain(scale_by_bias_corrected_rms, add_decayed_weights))
"""

import torch

import optimlab
from _common import digits, mlp

x_train, y_train, x_test, y_test = digits()
model = mlp()
optimizer = optimlab.ScheduleFreeAdamW(model.parameters(), lr=0.0025, warmup_steps=20)
generator = torch.Generator().manual_seed(0)
optimizer.train()  # before training steps
for step in range(300):
    batch = torch.randint(len(x_train), (64,), generator=generator)
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
    optimizer.step()
optimizer.eval()  # before evaluating (and saving): the parameters become x
with torch.no_grad():
    accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
print(f"ScheduleFreeAdamW, lr=0.0025: test accuracy {accuracy:.3f} at x (the average)")

import torch

# One thread per test process: on a 2-core machine shared with other work, torch's second
# OpenMP thread spins waiting for a busy core and makes small ops up to 100x slower.
torch.set_num_threads(1)

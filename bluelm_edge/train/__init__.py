"""Training the tiny stand-in on the synthetic tasks of `datasets/`: batches (data), the trainer with
DDP and resume (trainer, state), greedy evaluation (evaluate), shipping (ship)."""

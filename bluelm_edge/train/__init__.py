"""Training the tiny stand-in: synthetic tasks (tasks, images), data and batches (data), the
trainer with DDP and resume (trainer, state), greedy evaluation (evaluate), shipping (ship)."""

"""Training: the loop, tasks, objective, state and exact resume, interrupts, lr-find, batch preview."""

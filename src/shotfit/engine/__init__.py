"""Training: the loop, its schedule and stopping, checkpoints and the tracking backends."""

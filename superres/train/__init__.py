"""Training support: data degradations, datasets, losses and the training loop."""

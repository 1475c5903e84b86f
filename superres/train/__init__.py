"""Training support: data degradations, datasets, losses, the model (`model.py`) and its loop (`trainer.py`)."""

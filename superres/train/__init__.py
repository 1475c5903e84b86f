"""Training support: degradations, datasets, losses, the model (``model.py``), the loop (``trainer.py``)."""

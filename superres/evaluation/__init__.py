"""Evaluation on data sets and benchmarks: the layer above the engine that measures models.

* :mod:`superres.evaluation.dataset`: find HR/LR pairs of a data set and decode them.
* :mod:`superres.evaluation.evaluate`: run methods (bicubic, zoo models, weight files) and score them.
* :mod:`superres.evaluation.report` (+ ``tables``, ``charts``): present the scores.
* :mod:`superres.evaluation.bench`: speed and memory of models (``superres bench``).

The pure metrics they use live in :mod:`superres.metrics`; nothing there imports this package.
Nothing is imported here, so importing one module does not pull in the others.
"""

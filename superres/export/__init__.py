"""Deployable files from any loaded model: ONNX, TorchScript, OpenVINO IR (and INT8).

Rank 5 in the layers (beside the engine): it reads loaded models from the zoo and turns the
network the engine runs into files other runtimes load. The runtimes that run those files as
engine runners live in :mod:`superres.runtimes`.
"""

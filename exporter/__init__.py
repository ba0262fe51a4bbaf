"""Offline half of deepdenoise: model definition, training data, training, ONNX export.

This package may import torch (the online ``stream`` package never does). Modules that
need only ``onnx`` and ``numpy``, such as :mod:`exporter.simple_models`, are kept free of
torch so tests and the shipped placeholder model can be built without it.
"""

"""Framework-neutral sample quality: a small MNIST classifier's features, evaluated in numpy.

`feature_net` is the classifier (forward pass in numpy, weights checked by sha256), `stats` the
metrics on feature sets, `evaluate` the reference set and one entry point used by the harness.
"""

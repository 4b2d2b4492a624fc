"""Chainer backend: chainer.Chain models, a StandardUpdater subclass and a Trainer with
extensions (training.py), chainer.optimizers.Adam; numpy on the CPU, CuPy on a GPU."""

"""Chainer backend: chainer.Chain models, a StandardUpdater subclass and a Trainer with
extensions (training.py), chainer.optimizers.Adam; numpy on the CPU, CuPy on a GPU."""
import os

# Full float32 on GPUs, as the other backends: Chainer asks cuDNN for tensor-core math only in
# float16, which leaves cuDNN's default math mode, and that permits TF32 for float32
# convolutions on Ampere and newer GPUs (CuPy 13 with cuDNN). The switch is read when the CUDA
# libraries initialise, so it is set before CuPy's import; an explicit setting wins. CuPy's own
# matmuls (the convolutions of CuPy 14, which has no cuDNN) use TF32 only under CUPY_TF32=1.
# tests/backends/test_tf32.py proves it on a GPU (never run yet).
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

"""TensorFlow/Keras backend: keras.Model subclasses, a GAN model whose train_step is the spec's
iteration, Keras's Adam. See backend.py for what differs from the protocol."""
from backends import compat

compat.prepare_tensorflow()  # before any module of this package imports keras or tensorflow

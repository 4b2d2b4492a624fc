"""JAX backend: Flax NNX models, Optax's Adam, one jitted function for the whole iteration.

Nothing to do before the first import: the XLA flags that must precede JAX's runtime (threads,
host devices) are set by runtime.set_threads / runtime.set_host_devices, which the Backend calls
before its first array is made."""

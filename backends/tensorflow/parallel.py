"""TensorFlow data parallel: tf.distribute.MirroredStrategy in one process, Keras's fit.

- Replicas: N GPUs, or on a CPU N logical CPU devices (tf.config.set_logical_device_configuration,
  which must come before TF's runtime starts: the worker's fresh process).
- G, D, their optimizers and the GAN are built in the strategy's scope (mirrored variables);
  fit distributes the harness's dataset, splitting each global batch into N contiguous
  per-replica batches in order (replica 0 the first rows), and runs GAN.train_step per replica.
- Gradients: Keras 3's optimizer all-reduces them by SUM across replicas, so each replica's
  batch-mean loss is divided by N before its gradient (GAN.replicas): the mean of the replicas'
  gradients, the global batch's. The losses fit reports are the replicas' batch means averaged
  by the strategy (Keras's "auto" reduction is MEAN).
- BN is per replica (Keras's synchronized=False). Its moving statistics are MirroredVariables
  with aggregation "none": each replica keeps and updates its own copy from its own slice
  (measured: replica 0's G.bn0 moving mean after one step equals one device's after a step on
  rows 0..B/2 alone, replica 1's the other half's); export_weights reads replica 0's.
- Several hosts: refused (run_all.py, the registry's reason): Keras 3's fit, this backend's loop,
  does not run under MultiWorkerMirroredStrategy (measured, docs/data-parallel.md).
"""
from __future__ import annotations

import tensorflow as tf

from backends.base import BackendOptions, BackendUnavailable


class Replicas:
    """The strategy's replicas, all in this process: fit splits each batch among them."""

    def __init__(self, options: BackendOptions, device: str):
        self.strategy = _strategy(options.devices, device)

    def scope(self):
        return self.strategy.scope()

    def rows(self, batch_size: int) -> slice:
        return slice(0, batch_size)  # this process trains on the whole batch (split by fit)

    def mean_losses(self, loss_d, loss_g):
        return loss_d, loss_g  # already the replicas' mean (fit's MEAN reduction)

    def info(self) -> dict:
        n = self.strategy.num_replicas_in_sync
        return {"devices": n, "replicas": n, "nodes": 1, "engine": "tf MirroredStrategy",
                "batchnorm": "per replica",
                "replica_devices": list(self.strategy.extended.worker_devices)}


def _strategy(n: int, device: str) -> tf.distribute.MirroredStrategy:
    if device.startswith("/GPU"):
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < n:
            raise BackendUnavailable(f"--devices {n}: TensorFlow sees only {len(gpus)} GPU(s)")
        return tf.distribute.MirroredStrategy([g.name for g in gpus[:n]])
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as exc:  # TF's runtime already started in this process
        raise BackendUnavailable(f"--devices {n}: TensorFlow's runtime started before its "
                                 f"{n} logical CPU devices could be made") from exc
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
    # One process, no NCCL on CPUs: gradients are summed on one device and copied back.
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())

"""JAX backend: Flax NNX G and D, Optax's Adam, the iteration one jitted function.

Differences from the protocol worth knowing:
- The training state lives in two forms: the NNX modules (self.G, self.D: what weights.py,
  the introspection and the checkpoints read and write) and, while training, the functional
  carry of training.py that the jitted step takes and returns, its buffers donated. `nets()`
  writes the carry back into the modules; the next step splits them again.
- Adam is PyTorch's convention (optax scale_by_adam, eps_root=0); BN's running variance takes the
  biased batch variance (Flax's BatchNorm): running_var_unbiased False.
- Dispatch is asynchronous on every device: losses stay on the device until the fetch (every
  step on the CPU, every `fetch_every_gpu` on a GPU); synchronize() waits for the carry.
- options.bf16: Flax's compute dtype bfloat16 for every conv and BN (parameters, BN statistics,
  Adam and the losses stay float32). options.threads pins the process's CPUs (runtime.py).
- options.onednn: XLA:CPU's classic runtime, whose convolutions run in oneDNN (runtime.py says
  what was measured; newer jaxlibs ignore it), and the input-dilated convolutions (G's stride-2
  transposed ones, D's input gradients) as stride-1 phases, the form oneDNN takes
  (models.transpose_by_phases; without it they stayed float32 in Eigen, half the bf16 step).
- The first step's seconds include tracing and XLA's compilation of the step (timed as warm-up),
  except for a later Backend of the same spec, bf16 and onednn in one process: at the same batch shape it
  reuses the compiled step (_COMPILED).
- Data parallel (devices > 1): shard_map over a jax.sharding Mesh in this one process, see
  parallel.py.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from backends.base import BackendBase, BackendOptions
from backends.jax import models, parallel, runtime, training, weights
from common.spec import ModelSpec

NETS = ("G", "D")
# Every single-device Backend of one (spec, bf16, onednn) in a process shares its jitted functions: a
# rebuild makes new NNX GraphDefs that never compare equal (they hold the initializers, new
# closures each build) though they describe the same computation, so fresh jits would trace and
# compile the step again (1.5-3 s on the 2-core CPU; a CLI child builds one Backend, the tests
# and the harness's in-process users build many).
_COMPILED: dict = {}


class Backend(BackendBase):
    name = "jax"
    running_var_unbiased = False
    data_parallel = sync_bn_supported = True
    fetch_every_gpu = 10

    runtime, weights = runtime, weights

    @classmethod
    def gpu_devices(cls) -> list[str]:
        # The accelerators as "gpu:i (name)": the grid reads any probe entry other than "cpu" as
        # a GPU (jax.devices() alone would name the CPU "cpu:0 (cpu)").
        gpus = jax.devices("gpu") if runtime.gpu_unavailable_reason() is None else []
        return [f"gpu:{d.id} ({d.device_kind})" for d in gpus]

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        runtime.quiet(options.verbose)
        runtime.set_threads(options.threads)  # before XLA's runtime starts, like:
        if options.devices > 1:
            runtime.set_host_devices(options.devices)
        if options.onednn:
            runtime.use_classic_cpu_runtime()
        if options.nodes > 1:  # before JAX's runtime starts
            parallel.initialize(options)
        self.device = runtime.select_device(options.device)
        self.replicas = (parallel.Replicas(options, self.device)
                         if options.devices > 1 or options.nodes > 1 else None)
        # the next batch copied while a step runs (train): on one GPU
        self.stage_batches = runtime.is_gpu(self.device) and not self.replicas
        dtype = jnp.bfloat16 if options.bf16 else None
        # onednn: the input-dilated convolutions in the form oneDNN runs (models.transpose_by_phases)
        self.G, self.D = models.build(spec, options.seed, dtype, self.replicas and self.replicas.bn_axis,
                                      options.onednn)
        self.graphs = tuple(nnx.split(net, nnx.Param, nnx.BatchStat)[0] for net in (self.G, self.D))
        # Passes outside the mesh (evaluation, gradients) use BN without the mesh axis: the same
        # state, per-pass statistics (synchronised BN exists only inside the step).
        self.local_graphs = self.graphs if not options.sync_bn else tuple(
            nnx.split(net, nnx.Param, nnx.BatchStat)[0] for net in models.build(spec, options.seed, dtype, phases=options.onednn))
        shared = _COMPILED.get((spec, options.bf16, options.onednn)) if not self.replicas else None
        if shared:  # the same computation: its jitted functions, with the graphs they were traced with
            self.graphs = self.local_graphs = shared[0]
            self.tx, self._step, self._gradients, self._forward, self._apply = shared[1:]
        else:
            self.tx = training.adam(self.G, spec.adam)  # D's too (training.adam)
            iteration = functools.partial(training.spec_iteration, self.graphs, self.tx, spec)
            self._step = (self.replicas.step(iteration) if self.replicas
                          else jax.jit(iteration, donate_argnums=0))
            self._gradients = jax.jit(functools.partial(training.gradients, self.local_graphs, spec))
            self._forward = jax.jit(training.forward, static_argnums=(0, 4, 5))
            self._apply = jax.jit(functools.partial(training.apply_gradients, self.tx))
            if not self.replicas:
                _COMPILED[spec, options.bf16, options.onednn] = (self.graphs, self.tx, self._step, self._gradients,
                                                 self._forward, self._apply)
        self.opt = {n: self.tx.init(nnx.state(net, nnx.Param)) for n, net in zip(NETS, (self.G, self.D))}
        self._carry = None  # the carry after the last step; None: the modules are current

    # ----- state -----
    def carry(self) -> dict:
        """The functional training state (training.py), split from the modules if they are current."""
        if self._carry is None:
            self._carry = {n: nnx.split(net, nnx.Param, nnx.BatchStat)[1:]
                           for n, net in zip(NETS, (self.G, self.D))}
            self._carry["opt"] = self.opt
            if self.replicas:
                self._carry = self.replicas.place(self._carry)
        return self._carry

    def nets(self, copy: int = 0) -> dict:
        if self._carry is not None:  # the step's results back into the modules
            for n, net in zip(NETS, (self.G, self.D)):
                nnx.update(net, *self._carry[n])
            self.opt, self._carry = self._carry["opt"], None
        return {"G": self.G, "D": self.D}

    def synchronize(self) -> None:
        jax.block_until_ready(self._carry if self._carry is not None else self.opt)
        super().synchronize()

    # ----- device -----
    def gpu_name(self) -> str:
        return self.device.device_kind

    def device_details(self) -> dict:
        return {"matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
                "fast_paths": {"bf16_compute": self.options.bf16,
                               "classic_cpu_runtime_onednn": self.options.onednn}}

    # ----- checkpoints -----
    CHECKPOINT = "jax.npz"

    def save_checkpoint(self, folder) -> None:
        leaves = jax.tree_util.tree_flatten_with_path(self.carry())[0]
        np.savez(folder / self.CHECKPOINT,
                 **{jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves})

    def load_checkpoint(self, folder) -> None:
        leaves, tree = jax.tree_util.tree_flatten_with_path(self.carry())
        with np.load(folder / self.CHECKPOINT, allow_pickle=False) as saved:
            keys = [jax.tree_util.keystr(path) for path, _ in leaves]
            if sorted(keys) != sorted(saved.files):
                raise ValueError(f"{self.CHECKPOINT}: its arrays are not this backend's training state")
            restored = [jnp.asarray(saved[k], dtype=leaf.dtype) for k, (_, leaf) in zip(keys, leaves)]
        self._carry = jax.tree_util.tree_unflatten(tree, restored)
        if self.replicas:
            self._carry = self.replicas.place(self._carry)

    # ----- introspection -----
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        shapes = {}

        def observe(name, out):
            h, w, c = out.shape[1:]
            shapes[name] = (c, h, w)

        nets = self.nets()
        nets["G"](jnp.asarray(z), train=False, observe=observe)
        nets["D"](training.nhwc(jnp.asarray(x)), train=False, observe=observe)
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(int(a.size) for a in jax.tree.leaves(nnx.state(layer, nnx.Param)))
                for name, layer in models.layers(self.nets(), self.spec)}

    def _param_state(self, net: str, arrays: dict[str, np.ndarray]):
        """net's nnx.Param state with these canonical arrays in place of its weights."""
        # Copied containers: flax >= 0.11's merge reuses the state's Variables, whose values
        # (the carry's weights) the write below would otherwise replace.
        module = nnx.merge(self.graphs[NETS.index(net)], *jax.tree.map(lambda a: a, self.carry()[net]))
        weights.from_canonical({net: module}, arrays)
        return nnx.state(module, nnx.Param)

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        grad_state = self._param_state(net, grads)
        carry = self.carry()
        params, stats = carry[net]
        params, carry["opt"][net] = self._apply(params, grad_state, carry["opt"][net])
        carry[net] = (params, stats)

    # ----- compute -----
    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        params, stats = self.carry()[net]
        if self.replicas:
            params, stats = self.replicas.first(params), self.replicas.first(stats)
        out = self._forward(self.local_graphs[NETS.index(net)], params, stats, jnp.asarray(x), train, net == "D")
        out = np.asarray(out, dtype=np.float32)
        return out.transpose(0, 3, 1, 2).copy() if out.ndim == 4 else out

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        carry = self.carry()
        (loss_d, loss_g), grads = self._gradients(carry, jnp.asarray(real), jnp.asarray(z))
        named = {n: nnx.merge(self.graphs[i], g, carry[n][1]) for i, (n, g) in enumerate(zip(NETS, grads))}
        return {"loss_d": float(loss_d), "loss_g": float(loss_g),
                "grads": self.export_gradients(weights.arrays(named))}

    def _batch_step(self, real: np.ndarray, z: np.ndarray) -> jax.Array:
        """One iteration; the losses (2,) left on the device."""
        self._carry, losses = self._step(self.carry(), real, z)
        return losses

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        loss_d, loss_g = np.asarray(self._batch_step(real, z))
        return float(loss_d), float(loss_g)

    def stage(self, real: np.ndarray, z: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """A harness batch on this backend's device; device_put returns at once, the copy runs
        while the device computes."""
        return jax.device_put(real, self.device), jax.device_put(z, self.device)

    def train(self, batches, start, on_step) -> None:
        # On one GPU the next batch's copy is issued before the current step's losses are
        # fetched (BackendBase.fetching_loop): without it, after every fetch the GPU would wait
        # for the harness to make the next batch and for its copy. The CPU's loop is unchanged
        # (there the step is the whole machine's work); data parallel places its own shards.
        self.fetching_loop(batches, start, on_step, self._batch_step, training.losses_to_numpy,
                           self.stage if self.stage_batches else None)

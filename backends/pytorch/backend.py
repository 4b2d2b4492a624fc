"""PyTorch backend.

Differences from the protocol's defaults worth knowing:
- TF32 is switched off on CUDA (runtime.select_device) so the spec run computes in full float32
  like the other backends.
- Losses are fetched every `fetch_every_gpu` steps on a GPU (one sync per fetch); batches reach
  it from pinned memory on a copy stream (copy_to_gpu).
- `dtype` (float32) is what tensor() and targets() make: a test-only float64 reference
  (tests/support/pytorch_reference.py) sets it, with G and D converted.
- Data parallel (devices > 1): DDP under torchrun, see parallel.py.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from backends.base import BackendBase, BackendOptions
from backends.pytorch import models, parallel, runtime, training, weights
from common.spec import ModelSpec


class Backend(BackendBase):
    name = "pytorch"
    fetch_every_gpu = 10
    data_parallel = sync_bn_supported = True

    runtime, weights = runtime, weights

    @classmethod
    def gpu_devices(cls) -> list[str]:
        return [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        self.device = runtime.select_device(options.device)
        runtime.set_threads(options.threads)
        self.replicas = None
        if options.devices > 1 or options.nodes > 1:
            self.replicas = parallel.Replicas(options, self.device)
            self.device = self.replicas.device
        torch.manual_seed(options.seed)
        self.G, self.D = models.build(spec)
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.dtype = torch.float32
        for net in (self.G, self.D):
            net.to(self.device, memory_format=self.memory_format)
        self.opt_G, self.opt_D = (training.adam(net, spec.adam) for net in (self.G, self.D))
        # The modules whose passes train (DDP wrappers of G and D when data parallel).
        self.train_G, self.train_D = self.replicas.wrap(self.G, self.D) if self.replicas else (self.G, self.D)
        self.frozen_D = self.D  # the G step's D: no weight gradients, so never through DDP
        # CUDA graphs (max-autotune on CUDA) replay into the same output buffers every step
        self.cuda_graphs = options.compile and options.compile_mode == "max-autotune" and self.device.type == "cuda"
        if options.compile:  # Inductor-compiled training passes; evaluation stays eager
            compile_ = functools.partial(torch.compile, mode=None if options.compile_mode == "default"
                                         else options.compile_mode)
            self.train_G, self.train_D, self.frozen_D = map(compile_, (self.train_G, self.train_D, self.D))
        self._labels: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.copy_stream = None  # the host-to-device copies' stream on CUDA (copy_to_gpu)

    # ----- device -----
    def gpu_name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def device_details(self) -> dict:
        return {"fast_paths": {"channels_last": self.options.channels_last,
                               "bf16_autocast": self.options.bf16, "torch_compile": self.options.compile,
                               **({"torch_compile_mode": self.options.compile_mode} if self.options.compile else {})},
                **({"staging": "pinned memory, copy stream"} if self.on_gpu else {})}

    # ----- checkpoints -----
    CHECKPOINT = "pytorch.pt"

    def save_checkpoint(self, folder) -> None:
        torch.save({"G": self.G.state_dict(), "D": self.D.state_dict(),
                    "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict()},
                   folder / self.CHECKPOINT)

    def load_checkpoint(self, folder) -> None:
        # weights_only: tensors and plain containers, never arbitrary pickled objects.
        state = torch.load(folder / self.CHECKPOINT, map_location=self.device, weights_only=True)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])

    # ----- introspection -----
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        shapes: dict[str, tuple[int, int, int]] = {}

        def record(name):
            def hook(module, inputs, output):  # returns None: a returned value would replace output
                shapes[name] = tuple(output.shape[1:])
            return hook

        handles = [m.register_forward_hook(record(name))
                   for name, m in models.layers(self.nets(), self.spec)]
        try:
            self.generate(z), self.discriminate(x)
        finally:
            for h in handles:
                h.remove()
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters() if p.requires_grad)
                for name, m in models.layers(self.nets(), self.spec)}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        module, opt = (self.G, self.opt_G) if net == "G" else (self.D, self.opt_D)
        params = dict(module.named_parameters())
        for key, g in grads.items():
            params[weights.framework_key(key)[1]].grad = self.tensor(g)
        opt.step()

    # ----- compute -----
    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """A host array as this backend's input tensor: on its device, in `dtype`."""
        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.device.type == "cuda":
            # From pageable memory a host-to-device copy first waits for the stream: the host
            # would stall until the previous step ends and the GPU then idle while the harness
            # makes the next batch. From pinned memory (the caching host allocator: no
            # cudaHostAlloc per batch; a block is reused only after its copy ran) the copy is
            # queued and the host goes on; on a copy stream it also runs beside the steps still
            # queued (copy_to_gpu). The values are the same bytes.
            t = self.copy_to_gpu(t.pin_memory())
        else:
            t = t.to(self.device, non_blocking=True)
        if self.dtype != torch.float32:
            t = t.to(self.dtype)
        return t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t

    def copy_to_gpu(self, pinned: torch.Tensor) -> torch.Tensor:
        """A pinned host tensor copied to the GPU on a side stream, PyTorch's idiom for
        overlapping copies with compute: the compute (current) stream waits for the copy before
        anything reads the tensor, and record_stream keeps the caching allocator from handing
        its block to the copy stream again before the compute stream's work queued when it is
        freed has run (the allocator knows only the stream a block was allocated on). The cost:
        a freed batch's block is reused a little later (the host runs at most `fetch_every`
        steps ahead)."""
        if self.copy_stream is None:
            self.copy_stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.copy_stream):
            t = pinned.to(self.device, non_blocking=True)
        compute.wait_stream(self.copy_stream)
        t.record_stream(compute)
        return t

    def targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss's (real, fake) label tensors for a batch of n, in `dtype`."""
        if (n, self.dtype) not in self._labels:
            loss = self.spec.loss
            self._labels[n, self.dtype] = (
                torch.full((n,), loss.real_label, device=self.device, dtype=self.dtype),
                torch.full((n,), loss.fake_label, device=self.device, dtype=self.dtype))
        return self._labels[n, self.dtype]

    def autocast(self):
        if self.options.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        module = self.nets()[net]
        with torch.no_grad(), models.bn_mode(module, train), self.autocast():
            out = module(self.tensor(x))
        return out.float().cpu().numpy()

    def _batch_step(self, real: np.ndarray, z: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration on the harness batch (this replica's rows of it when data parallel),
        the losses left on the device."""
        if self.replicas:
            rows = self.replicas.rows(real.shape[0])
            real, z = real[rows], z[rows]
        if self.cuda_graphs:
            # A new iteration: the graphs may overwrite the previous step's outputs (torch.compile's
            # CUDA-graph trees; the losses kept for the fetch are eager tensors computed from them).
            torch.compiler.cudagraph_mark_step_begin()
        losses = training.spec_iteration(self.train_G, self.train_D, self.opt_G, self.opt_D,
                                         self.tensor(real), self.tensor(z), *self.targets(real.shape[0]),
                                         frozen_D=self.frozen_D, autocast=self.autocast)
        return self.replicas.mean_losses(*losses) if self.replicas else losses

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        real_t, fake_t = self.targets(real.shape[0])
        bce = training.bce_with_logits
        with models.bn_mode(self.G, True), models.bn_mode(self.D, True):
            fake = self.G(self.tensor(z))
            loss_d = bce(self.D(self.tensor(real)), real_t) + bce(self.D(fake.detach()), fake_t)
            loss_g = bce(self.D(fake), real_t)
            named = {}
            for name, net, loss in (("D", self.D, loss_d), ("G", self.G, loss_g)):
                params = dict(net.named_parameters())
                named[name] = dict(zip(params, torch.autograd.grad(loss, list(params.values()),
                                                                   retain_graph=True)))
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                "grads": self.export_gradients(named)}

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        loss_d, loss_g = self._batch_step(real, z)
        return float(loss_d), float(loss_g)

    def train(self, batches, start, on_step) -> None:
        self.fetching_loop(batches, start, on_step, self._batch_step, training.losses_to_numpy)

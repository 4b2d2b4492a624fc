"""PyTorch backend.

Differences from the protocol's defaults worth knowing:
- TF32 is switched off on CUDA so the spec run computes in full float32 like the other backends.
- During the G step D's parameters have requires_grad off: loss_G still flows through D into G,
  but D's weight gradients (discarded by the reference loop) are never computed.
- Losses are fetched every `fetch_every` steps on a GPU (one sync per fetch); on the CPU each step
  is already synchronous, so they are fetched each step.
- Data parallel (devices > 1): DDP under torchrun, see parallel.py.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.pytorch import models, parallel, weights
from common import sysinfo
from common.harness.timing import FetchTimer, LossFetcher
from common.spec import ModelSpec


def _select_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    if requested == "gpu":
        raise BackendUnavailable("--device gpu: torch sees no CUDA device "
                                 f"(torch {torch.__version__} built with CUDA {torch.version.cuda})")
    return torch.device("cpu")


@contextlib.contextmanager
def _bn_mode(module: nn.Module, train: bool):
    """BN with batch statistics (train=True) or running statistics, restoring the module's mode
    afterwards; in train mode the running statistics are saved and put back unchanged."""
    saved = ({k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}
             if train else {})
    was_training = module.training
    module.train(train)
    try:
        yield
    finally:
        if saved:
            module.load_state_dict(saved, strict=False)
        module.train(was_training)


class Backend(BackendBase):
    name = "pytorch"
    fetch_every_gpu = 10
    data_parallel = sync_bn_supported = True

    @classmethod
    def probe(cls) -> dict:
        devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                             for i in range(torch.cuda.device_count())]
        return {"version": torch.__version__, "devices": devices}

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        self.device = _select_device(options.device)
        if options.threads:
            torch.set_num_threads(options.threads)
        self.replicas = None
        if options.devices > 1 or options.nodes > 1:
            self.replicas = parallel.Replicas(options, self.device)
            self.device = self.replicas.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            # Full float32 for spec runs: TF32 would make this backend faster and less exact.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(options.seed)
        self.G = models.Generator(spec)
        self.D = models.Discriminator(spec)
        models.init_weights(self.G, spec)
        models.init_weights(self.D, spec)
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        for net in (self.G, self.D):
            net.to(self.device, memory_format=self.memory_format)
        adam = spec.adam
        make_adam = lambda params: torch.optim.Adam(  # noqa: E731
            params, lr=adam.lr, betas=(adam.beta1, adam.beta2), eps=adam.eps,
            weight_decay=adam.weight_decay)
        self.opt_G, self.opt_D = make_adam(self.G.parameters()), make_adam(self.D.parameters())
        self.criterion = nn.BCEWithLogitsLoss()  # batch mean, as the spec's loss
        # The modules whose passes train (DDP wrappers of G and D when data parallel).
        self.train_G, self.train_D = self.replicas.wrap(self.G, self.D) if self.replicas else (self.G, self.D)
        self.frozen_D = self.D  # the G step's D: no weight gradients, so never through DDP
        if options.compile:  # Inductor-compiled training passes; evaluation stays eager
            self.train_G, self.train_D, self.frozen_D = map(torch.compile, (self.train_G, self.train_D, self.D))
        self._labels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def parallel_info(self) -> dict:
        return self.replicas.info() if self.replicas else super().parallel_info()

    # ----- device -----
    def device_info(self) -> dict:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        else:
            name = sysinfo.cpu_model()
        return {"device": "gpu" if self.device.type == "cuda" else "cpu", "name": name,
                "framework_version": torch.__version__,
                "threads": {"torch.get_num_threads": torch.get_num_threads(),
                            "torch.get_num_interop_threads": torch.get_num_interop_threads()},
                "fast_paths": {"channels_last": self.options.channels_last,
                               "bf16_autocast": self.options.bf16, "torch_compile": self.options.compile}}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak_memory(self) -> dict:
        if self.device.type == "cuda":
            return {"bytes": int(torch.cuda.max_memory_allocated(self.device)),
                    "kind": "device-allocator"}
        return {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}

    # ----- weights -----
    def _nets(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def load_weights(self, canonical: dict[str, np.ndarray]) -> None:
        weights.from_canonical(self._nets(), canonical)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.to_canonical(self._nets(), self.spec.parameter_shapes())

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
    def _layers(self):
        """(spec name, torch module) for every conv/deconv and BN: children share the names."""
        for layer in self.spec.layers:
            net = self._nets()[layer.net].net
            yield layer.name, getattr(net, f"{layer.kind}{layer.index}")
            if layer.batchnorm:
                yield layer.bn_name, getattr(net, f"bn{layer.index}")

    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        shapes: dict[str, tuple[int, int, int]] = {}

        def record(name):
            def hook(module, inputs, output):  # returns None: a returned value would replace output
                shapes[name] = tuple(output.shape[1:])
            return hook

        handles = [m.register_forward_hook(record(name)) for name, m in self._layers()]
        try:
            self.generate(z), self.discriminate(x)
        finally:
            for h in handles:
                h.remove()
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters() if p.requires_grad)
                for name, m in self._layers()}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        module, opt = (self.G, self.opt_G) if net == "G" else (self.D, self.opt_D)
        params = dict(module.named_parameters())
        for key, g in grads.items():
            params[weights.torch_key(key)[1]].grad = self._tensor(g)
        opt.step()

    # ----- compute -----
    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t

    def _autocast(self):
        if self.options.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _eval_forward(self, net: nn.Module, x: np.ndarray, train: bool) -> np.ndarray:
        with torch.no_grad(), _bn_mode(net, train), self._autocast():
            out = net(self._tensor(x))
        return out.float().cpu().numpy()

    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        return self._eval_forward(self.G, z, train)

    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return self._eval_forward(self.D, x, train)

    def _targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if n not in self._labels:
            loss = self.spec.loss
            self._labels[n] = (torch.full((n,), loss.real_label, device=self.device),
                               torch.full((n,), loss.fake_label, device=self.device))
        return self._labels[n]

    def _step(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SPEC.md's iteration on device tensors; returns the losses without a host sync."""
        real_t, fake_t = self._targets(real.shape[0])
        self.G.train()
        self.D.train()
        with self._autocast():
            fake = self.train_G(z)  # once per iteration: both steps use it

            # D step: real and fake in separate forward passes (two sets of batch statistics).
            self.opt_D.zero_grad(set_to_none=True)
            loss_d = (self.criterion(self.train_D(real).float(), real_t)
                      + self.criterion(self.train_D(fake.detach()).float(), fake_t))
        loss_d.backward()
        self.opt_D.step()

        # G step through the updated D; D's own weight gradients are not needed.
        self.opt_G.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        try:
            with self._autocast():
                loss_g = self.criterion(self.frozen_D(fake).float(), real_t)
            loss_g.backward()
        finally:
            self.D.requires_grad_(True)
        self.opt_G.step()
        if self.replicas:
            return self.replicas.mean_losses(loss_d.detach(), loss_g.detach())
        return loss_d.detach(), loss_g.detach()

    def _batch_step(self, real: np.ndarray, z: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration on the harness batch: this replica's slice of it when data parallel."""
        if self.replicas:
            rows = self.replicas.rows(real.shape[0])
            real, z = real[rows], z[rows]
        return self._step(self._tensor(real), self._tensor(z))

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        real_t, fake_t = self._targets(real.shape[0])
        with _bn_mode(self.G, True), _bn_mode(self.D, True):
            fake = self.G(self._tensor(z))
            loss_d = (self.criterion(self.D(self._tensor(real)), real_t)
                      + self.criterion(self.D(fake.detach()), fake_t))
            loss_g = self.criterion(self.D(fake), real_t)
            named = {}
            for name, net, loss in (("D", self.D, loss_d), ("G", self.G, loss_g)):
                params = dict(net.named_parameters())
                named[name] = dict(zip(params, torch.autograd.grad(loss, list(params.values()),
                                                                   retain_graph=True)))
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                "grads": weights.grads_to_canonical(named, self.spec.parameter_shapes())}

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        loss_d, loss_g = self._batch_step(real, z)
        return float(loss_d), float(loss_g)

    def train(self, batches, start, on_step) -> None:
        # On a GPU a loss fetch is a sync: fetch every K steps and time the K steps together.
        k = self.fetch_every_gpu if self.device.type == "cuda" else 1
        batches = FetchTimer(batches)  # the harness's data work is not step time
        fetcher = LossFetcher(on_step, batches, start, k, _losses_to_numpy)
        for real, z in batches:
            fetcher.add(self._batch_step(real, z))
        fetcher.flush()


def _losses_to_numpy(pending: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    return torch.stack([torch.stack(p) for p in pending]).cpu().numpy()  # the sync

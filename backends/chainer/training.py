"""Chainer's training-loop idiom around SPEC.md's iteration: an Iterator over the harness's
batches, a StandardUpdater subclass, and a Trainer with LogReport, the harness's progress
(on_step) and, when asked for, snapshots."""
from __future__ import annotations

import contextlib
import tempfile

from backends.compat import prepare_chainer
from backends.chainer.weights import to_canonical_layout
from common.spec import AdamSpec, LossSpec
from common.timing import FetchTimer, LossFetcher

chainer = prepare_chainer()
import chainer.functions as F  # noqa: E402
from chainer import training  # noqa: E402
from chainer.training import extensions  # noqa: E402


def bce_with_logits(logits, target: float):
    """Binary cross-entropy on logits, batch mean, for a float target: F.sigmoid_cross_entropy
    takes integer labels only (no label smoothing). softplus(x) - t·x is the stable form PyTorch
    uses too (chainer's softplus is max(x, 0) + log1p(exp(-|x|)))."""
    return F.mean(F.softplus(logits) - target * logits)


def adam(net, spec: AdamSpec):
    """chainer's Adam on net. Every hyperparameter explicit; eta 1 and amsgrad/adabound off make
    it plain Adam, and weight_decay_rate is the spec's (0: none)."""
    opt = chainer.optimizers.Adam(alpha=spec.lr, beta1=spec.beta1, beta2=spec.beta2, eps=spec.eps,
                                  eta=1.0, weight_decay_rate=spec.weight_decay, amsgrad=False,
                                  adabound=False)
    opt.setup(net)
    return opt


def spec_iteration(G, D, opt_G, opt_D, real, z, loss: LossSpec):
    """SPEC.md's iteration on device arrays; returns the losses as 0-d device arrays (no sync)."""
    fake = G(z)  # once per iteration: both steps use it

    # D step: real and fake in separate passes (two sets of batch statistics); fake.array
    # carries no graph, so no gradient reaches G.
    loss_d = (bce_with_logits(D(real), loss.real_label)
              + bce_with_logits(D(fake.array), loss.fake_label))
    D.cleargrads()
    loss_d.backward()
    opt_D.update()

    # G step through the UPDATED D (its third BN pass), on the same fake. chainer.grad computes
    # only G's gradients: D's weight gradients, which nothing would use, are never computed.
    loss_g = bce_with_logits(D(fake), loss.real_label)
    chainer.grad([loss_g], list(G.params()), set_grad=True)
    opt_G.update()
    return loss_d.array, loss_g.array


class HarnessBatches(chainer.dataset.Iterator):
    """The harness's (real, z) batches, order and values unchanged. The harness owns epochs
    and data order; one batch of lookahead tells the trainer's stop trigger when they end."""
    epoch, epoch_detail, is_new_epoch = 0, 0.0, False

    def __init__(self, batches):
        self._batches = iter(batches)
        self._next = next(self._batches, None)

    @property
    def exhausted(self) -> bool:
        return self._next is None

    def __next__(self):
        if self._next is None:
            raise StopIteration
        batch, self._next = self._next, next(self._batches, None)
        return batch

    def serialize(self, serializer):
        pass  # nothing to save: the harness derives batch i from (seed, i)


def to_device(batch, device):
    """The plain converter: device.send (on a GPU a synchronous copy from pageable memory; on
    the CPU the arrays themselves). On a GPU train() uses runtime.batch_stager instead."""
    real, z = batch
    return device.send(real), device.send(z)


class DCGANUpdater(training.updaters.StandardUpdater):
    """update_core runs SPEC.md's iteration (spec_iteration): G once, D step, then the G step
    through the updated D. Chainer's DCGAN tutorial differs here: its update_core computes
    D(G(z)) once, before D's update, and takes G's loss from that same output, so its G step
    sees the old D; this one runs D again after D's update, as the spec and PyTorch do."""

    def __init__(self, iterator, G, D, opt_G, opt_D, device, loss: LossSpec, converter=to_device):
        self.G, self.D, self.loss = G, D, loss
        super().__init__(iterator, {"gen": opt_G, "dis": opt_D}, converter=converter,
                         device=device, auto_new_epoch=False)

    def update_core(self):
        real, z = self.converter(self.get_iterator("main").next(), self.device)
        loss_d, loss_g = spec_iteration(self.G, self.D, self.get_optimizer("gen"),
                                        self.get_optimizer("dis"), real, z, self.loss)
        chainer.report({"loss_d": loss_d, "loss_g": loss_g})


class HarnessProgress(training.Extension):
    """Hands every finished iteration to the harness's on_step (its progress bar, loss log and
    divergence check) through common.timing.LossFetcher: losses fetched every `fetch_every`
    iterations (1 on the CPU), the harness's batch fetch and on_step not counted as step time."""
    trigger = (1, "iteration")
    priority = -200  # after LogReport and snapshot: on_step sees the finished iteration

    def __init__(self, on_step, batches: FetchTimer, fetch_every: int, start: int,
                 reduce=lambda losses: losses):
        # reduce: the fetched (k, 2) losses to the global batch's (replicas' mean when data parallel)
        self.fetcher = LossFetcher(on_step, batches, start, fetch_every,
                                   lambda pending: reduce(_losses_to_numpy(pending)))

    def initialize(self, trainer):
        self.fetcher.restart()  # the iterator's first lookahead happened before the first step

    def __call__(self, trainer):
        obs = trainer.observation
        self.fetcher.add((obs["loss_d"], obs["loss_g"]))

    def flush(self):
        self.fetcher.flush()


def _losses_to_numpy(pending):
    xp = chainer.backend.get_array_module(pending[0][0])
    return to_canonical_layout(xp.stack([xp.stack(p) for p in pending]))  # the sync


def _every(n: int):
    """Fires when the iterations done are a multiple of n: unlike IntervalTrigger, whose state
    starts at iteration 0, right from any start iteration."""
    return lambda trainer: trainer.updater.iteration % n == 0


def run_trainer(updater: DCGANUpdater, iterator: HarnessBatches, progress: HarnessProgress,
                start: int, out: str | None = None, log_every: int = 100,
                snapshot_every: int | None = None) -> None:
    """A Trainer over the harness's batches from iteration `start`. `out` is the trainer's
    directory: LogReport's `log` and the snapshots go there (off unless `out` and
    `snapshot_every` are given); without it, the log stays in memory."""
    updater.iteration = start  # the trainer counts the harness's iterations
    with contextlib.ExitStack() as stack:
        trainer_out = out or stack.enter_context(tempfile.TemporaryDirectory(prefix="chainer-"))
        trainer = training.Trainer(updater, lambda trainer: iterator.exhausted, out=trainer_out)
        trainer.extend(extensions.LogReport(keys=["loss_d", "loss_g"],
                                            trigger=_every(log_every),
                                            filename="log" if out else None))
        if out and snapshot_every:
            trainer.extend(extensions.snapshot(), trigger=_every(snapshot_every))
        trainer.extend(progress)
        # The harness records exceptions (divergence, interrupts) itself: no loop banner.
        trainer.run(show_loop_exception_msg=False)
    progress.flush()  # the last iterations when fetch_every does not divide their number

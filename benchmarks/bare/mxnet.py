"""Bare MXNet loop: the Module API's forward, backward and update, nothing around them.

The modules are the backend's (models.build), since their layout is the idiom: G; D, whose
parameter gradients add up over the real and the fake pass (grad_req 'add', zeroed before each D
step); and D_G, bound on D's arrays (shared_module) without parameter gradients, whose input
gradient drives G's backward. Adam takes the backend's hyperparameters (training.adam: the
spec's, corrected for mxnet's float32 operator arguments), so only the loop around the step
differs. MXNet's engine is asynchronous, on the CPU too: each step ends with mx.nd.waitall()."""
from __future__ import annotations

import os

from benchmarks.bare import loop
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    if threads > 0:  # MXNet reads it once, at import: a no-op if mxnet is already imported
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from backends.mxnet import models, runtime, training, weights  # imports mxnet
    import mxnet as mx

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    runtime.quiet(verbose=False)
    ctx = runtime.select_device(device)  # the GPU path is untested here (no GPU)

    G, D, D_G = models.build(spec, [ctx], batch)
    for module in (G, D):
        training.adam(module, spec.adam)
    weights.from_canonical({net: dict(exe.arg_dict, **exe.aux_dict) for net, exe in
                            (("G", models.executor(G)), ("D", models.executor(D)))},
                           loop.starting_weights(spec, init_weights))

    real, z = (mx.nd.array(x, ctx=ctx) for x in loop.fixed_batch(spec, batch))
    real_t = mx.nd.full((batch,), spec.loss.real_label, ctx=ctx)
    fake_t = mx.nd.full((batch,), spec.loss.fake_label, ctx=ctx)
    d_grads = list(models.param_grads(D).values())

    def step():
        G.forward(mx.io.DataBatch([z]), is_train=True)
        fake = G.get_outputs()[0]

        for grad in d_grads:
            grad[:] = 0
        D.forward(mx.io.DataBatch([real], [real_t]), is_train=True)
        D.backward()
        loss_d = D.get_outputs()[0].copy()  # the output buffer is reused by the next forward
        D.forward(mx.io.DataBatch([fake], [fake_t]), is_train=True)
        D.backward()
        loss_d = loss_d + D.get_outputs()[0]
        D.update()

        D_G.forward(mx.io.DataBatch([fake], [real_t]), is_train=True)  # the updated D
        D_G.backward()
        loss_g = D_G.get_outputs()[0].copy()
        G.backward(D_G.get_input_grads())
        G.update()
        return loss_d, loss_g

    def finish(losses):
        runtime.synchronize(ctx)  # the step's last updates too, not just the losses
        return [float(loss.asscalar()) for loss in losses]

    # On a GPU MXNet has no allocator peak: the device memory in use, sampled at the end.
    return loop.report(loop.timed_steps(step, finish, iters), runtime, ctx,
                       threads={"requested": threads, **runtime.thread_info()})


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.mxnet", "MXNet's bare reference loop", "benchmarks.bare -h"))

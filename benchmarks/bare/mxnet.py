"""Bare MXNet loop: the Module API's forward, backward and update, nothing around them.

The Module layout is the backend's, since it is the idiom: G; D, whose parameter gradients add up
over the real and the fake pass (grad_req 'add', zeroed before each D step); and D_G, bound on D's
arrays (shared_module) without parameter gradients, whose input gradient drives G's backward. Adam
takes the backend's hyperparameters (`_adam_params`: the spec's, corrected for mxnet's float32
operator arguments), so only the loop around the step differs. MXNet's engine is asynchronous,
on the CPU too: each step ends with mx.nd.waitall()."""
from __future__ import annotations

import os

from benchmarks.bare import loop
from common import sysinfo
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    if threads > 0:  # MXNet reads it once, at import: a no-op if mxnet is already imported
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from backends.mxnet import backend, models, weights  # imports mxnet after compat.prepare_mxnet()
    import mxnet as mx

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    backend._quiet(verbose=False)
    on_gpu = device == "gpu"
    if on_gpu and backend._gpu_count() == 0:
        raise RuntimeError(f"--device gpu: mxnet {mx.__version__} sees no GPU")
    ctx = mx.gpu(0) if on_gpu else mx.cpu()  # the GPU path is untested here (no GPU)
    p = spec.preset

    G = mx.mod.Module(models.generator(spec), data_names=(models.Z,), label_names=None, context=ctx)
    G.bind(data_shapes=[(models.Z, (batch, p.nz))], for_training=True)
    d_symbol = models.discriminator(spec)
    shapes = dict(data_shapes=[(models.IMAGES, (batch, p.channels, p.image_size, p.image_size))],
                  label_shapes=[(models.LABEL, (batch,))], for_training=True, inputs_need_grad=True)
    d_params = [n for n in d_symbol.list_arguments() if n not in (models.IMAGES, models.LABEL)]
    data_grads = {models.IMAGES: "write", models.LABEL: "null"}
    D = mx.mod.Module(d_symbol, data_names=(models.IMAGES,), label_names=(models.LABEL,), context=ctx)
    D.bind(**shapes, grad_req=dict(dict.fromkeys(d_params, "add"), **data_grads))
    for module in (G, D):
        module.init_params(initializer=mx.init.Zero())  # overwritten by the canonical weights
        module.init_optimizer(kvstore=None, optimizer="adam",
                              optimizer_params=backend._adam_params(spec.adam))
    D_G = mx.mod.Module(d_symbol, data_names=(models.IMAGES,), label_names=(models.LABEL,), context=ctx)
    D_G.bind(**shapes, shared_module=D, grad_req=dict(dict.fromkeys(d_params, "null"), **data_grads))
    executors = {"G": backend._executor(G), "D": backend._executor(D)}
    weights.from_canonical({net: dict(exe.arg_dict, **exe.aux_dict) for net, exe in executors.items()},
                           loop.starting_weights(spec, init_weights))

    real, z = (mx.nd.array(x, ctx=ctx) for x in loop.fixed_batch(spec, batch))
    real_t = mx.nd.full((batch,), spec.loss.real_label, ctx=ctx)
    fake_t = mx.nd.full((batch,), spec.loss.fake_label, ctx=ctx)
    d_grads = [executors["D"].grad_dict[name] for name in d_params]

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
        mx.nd.waitall()  # the step's last updates too, not just the losses
        return [float(loss.asscalar()) for loss in losses]

    result = loop.timed_steps(step, finish, iters)
    if on_gpu:  # MXNet has no allocator peak: device memory in use, sampled now
        free, total = mx.context.gpu_memory_info(0)
        peak = {"bytes": int(total - free), "kind": "device used, sampled (MXNet has no allocator peak)"}
    else:
        peak = {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}
    return dict(result, peak_memory=peak, framework_version=mx.__version__,
                threads={"requested": threads, **{k: v for k, v in
                                                  backend._THREAD_ENV_AT_IMPORT.items() if v}})

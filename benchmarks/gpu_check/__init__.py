"""One command that proves and measures every GPU path, within a time budget.

    python -m benchmarks.gpu_check                       # on a GPU node: 8 minutes by default
    python -m benchmarks.gpu_check --device cpu --smoke  # the same path, tiny (CI runs it)

Steps, most valuable first; each is its own process, and the summary (summary.json,
summary.md) is rewritten after every step, so a stop at any moment (budget, Ctrl-C, SIGTERM)
leaves complete results of the steps done and says which were not:
1. probe: the GPU, driver and CUDA (nvidia-smi), every registered backend's framework version,
   CUDA/cuDNN build and the devices it sees (probe.py);
2. parity: the `gpu`-marked tests (forward, gradients and one iteration against the float64
   oracle; TF32 proven off) with DCGAN_BENCH_TEST_DEVICE set to the device;
3. main job: `run_all.py --device DEVICE --dataset mnist` with every backend that sees it;
4. peak: the device's dense GEMM peak at float32 and bf16, measured once (benchmarks/peak.py),
   which every grid cell is reported against (`of measured peak`);
5. grid: benchmarks.throughput at dcgan64 (smoke: mnist32), batch 256 then 64, spec then best,
   one cell per process, with the GPU's power sampled (~10 Hz) for joules per image (power.py).
   First-step (compile) time is its own column, apart from img/s;
6. quality: each backend's best configuration trained as the main job trained spec, both scored
   for sample quality (quality_step.py).
Writes benchmarks/results/<gpu>-<date>-gpu-check/ (the smoke run: runs/gpu-check-smoke-<time>/).
`--resume DIR` continues such a folder, on this machine or a fresh one: its finished steps and
cells are kept, the rest run (the probe and the peak again, as the machine may be another); each
run's files carry a suffix (-r2, ...) and each record its run's number.
Exit status: 0 all done and passed, 1 a step failed (or no backend can run), 2 bad usage,
3 nothing failed but the budget or a stop left steps out.

The package, by concern: __main__.py (the options and the order of the steps), state.py (the
check's folder, budget and records), steps.py (the steps), probe.py (what the machine and each
framework report), power.py (power samples and joules per image), summary.py (summary.md and
--resume's reader), quality_step.py (best against spec in sample quality).
"""

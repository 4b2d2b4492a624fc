"""The device's measured dense peak: large GEMMs at each precision a grid uses, in the same run.

A datasheet peak exists only for known GPUs (common/metrics/flops.py); a CPU's depends on its
cores, clocks, vector units and the BLAS, and a shared VM's on its neighbours. So every grid
starts by measuring what this machine does on the one kernel that gets closest to its limit, a
large square matrix multiply, and reports each cell as a fraction of that:

- float32 ('fp32'): torch.matmul (MKL/oneDNN on a CPU; cuBLAS with TF32 off on a GPU, as the spec
  runs) and numpy's matmul (its BLAS); the faster counts.
- bfloat16 ('bf16'): torch.matmul on bfloat16 tensors (oneDNN's AVX-512-BF16/AMX kernels on a CPU
  that has them, tensor cores on a GPU).

Each method runs blocks of back-to-back multiplies (device synchronised at each block's end) at
a few sizes for about `seconds` per precision after one warm-up multiply; the peak is the fastest
block (the least disturbed: on a shared machine the median is below it, and is recorded too),
with its method, size, threads and every block's rate. Run in its own process, with the
environment every cell starts with (threads and allocator settings, common/harness/child.py):

    python -m benchmarks.peak --device cpu --threads 2 --precisions fp32,bf16 --out peak.json
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import cli
from common.harness import child

PRECISIONS = ("fp32", "bf16")
SIZES = {"cpu": (1024, 2048), "gpu": (4096, 8192)}  # one multiply well under a block


def _blocks(matmul, sync, n: int, seconds: float, block: float) -> list[float]:
    """FLOP/s of consecutive blocks of matmul() calls on n x n matrices, each about `block` s."""
    matmul()
    sync()  # warm-up: kernel selection, allocation
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or not rates:
        t0, k = time.perf_counter(), 0
        while k == 0 or time.perf_counter() - t0 < block:
            matmul()
            k += 1
            if k % 8 == 0:
                sync()
        sync()
        rates.append(2 * n ** 3 * k / (time.perf_counter() - t0))
    return rates


def torch_method(precision: str, device: str, n: int):
    import torch  # the measuring process only; the grid itself imports no framework
    if device == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as the spec runs it
        dev = torch.device("cuda", 0)
        sync = torch.cuda.synchronize
    else:
        dev, sync = torch.device("cpu"), (lambda: None)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device=dev).manual_seed(0)
    a, b = (torch.randn(n, n, dtype=dtype, device=dev, generator=g) for _ in range(2))
    out = torch.empty(n, n, dtype=dtype, device=dev)
    return (lambda: torch.matmul(a, b, out=out)), sync, f"torch {torch.__version__} matmul"


def numpy_method(precision: str, device: str, n: int):
    import numpy as np
    if precision != "fp32" or device != "cpu":
        raise RuntimeError("numpy multiplies float32 on the CPU only")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    return (lambda: np.matmul(a, b, out=out)), (lambda: None), f"numpy {np.__version__} matmul"


METHODS = {"fp32": (torch_method, numpy_method), "bf16": (torch_method,)}


def measure(precisions, device: str = "cpu", threads: int = 0, seconds: float = 3.0,
            block: float = 0.25) -> dict:
    """{precision: {flops, median_flops, method, size, threads, tried: [...]}} or, where no
    method runs, {precision: {flops: None, reason}}. Threads 0 leaves every library's own."""
    if threads:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            pass
    out = {}
    for precision in precisions:
        tried, best = [], None
        methods = METHODS[precision]
        per_try = seconds / (len(methods) * len(SIZES[device]))
        for method in methods:
            for n in SIZES[device]:
                try:
                    matmul, sync, name = method(precision, device, n)
                    rates = _blocks(matmul, sync, n, per_try, block)
                except (ImportError, RuntimeError, MemoryError) as exc:
                    tried.append({"method": method.__name__, "size": n, "error": str(exc)[:200]})
                    break
                rates.sort()
                entry = {"method": name, "size": n, "flops": rates[-1],
                         "median_flops": rates[len(rates) // 2], "blocks": len(rates)}
                tried.append(entry)
                if best is None or entry["flops"] > best["flops"]:
                    best = entry
        if best is None:
            out[precision] = {"flops": None, "reason": "; ".join(t.get("error", "") for t in tried),
                              "tried": tried}
        else:
            out[precision] = dict(best, threads=threads or None, device=device, tried=tried)
    return out


def command(precisions, device: str, threads: int, seconds: float, path: Path) -> tuple[list[str], dict]:
    """The measuring process's command line and its environment: the one every cell starts with
    (child.process_env: OMP_NUM_THREADS, read at import, and the allocator settings), so the peak
    and the cells it divides are measured alike. Used by the grid and the GPU check alike."""
    cmd = [sys.executable, "-m", "benchmarks.peak", "--device", device, "--threads", str(threads),
           "--precisions", ",".join(precisions), "--seconds", str(seconds), "--out", str(path)]
    env = child.process_env(threads) if threads else {}
    return cmd, env


def measure_in_subprocess(precisions, device: str, threads: int, seconds: float, work: Path) -> dict:
    """measure() in a fresh process (command()); {precision: {...}} as measure() returns, or each
    precision's failure."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"peak-{device}.json"
    cmd, env = command(precisions, device, threads, seconds, path)
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                          text=True, env=dict(os.environ, **env))
    if proc.returncode or not path.exists():
        reason = f"benchmarks.peak failed: {proc.stderr.strip()[-300:]}"
        return {p: {"flops": None, "reason": reason} for p in precisions}
    return json.loads(path.read_text())


def precision_of(config: str) -> str:
    """The precision a grid cell's configuration computes in: 'bf16' for a bf16 path."""
    return "bf16" if "bf16" in config else "fp32"


def fraction(gflops: float, peaks: dict, device: str, config: str) -> float | None:
    """The cell's model GFLOP/s as a fraction of its device's measured peak at its precision."""
    peak = (peaks.get(device) or {}).get(precision_of(config)) or {}
    return gflops * 1e9 / peak["flops"] if peak.get("flops") else None


def describe(peaks: dict) -> str:
    """One line per device and precision, for the table's header."""
    lines = []
    for device, by_precision in sorted(peaks.items()):
        for precision, p in by_precision.items():
            if p.get("flops"):
                lines.append(f"{device} {precision}: {p['flops'] / 1e9:.1f} GFLOP/s "
                             f"(median block {p['median_flops'] / 1e9:.1f}; {p['method']}, "
                             f"{p['size']}x{p['size']}, threads {p.get('threads') or 'default'})")
            else:
                lines.append(f"{device} {precision}: not measured ({p.get('reason', '')})")
    return "; ".join(lines)


def main(argv=None) -> int:
    p = cli.entry_parser("python -m benchmarks.peak", __doc__,
                         epilog="example: python -m benchmarks.peak --device cpu --threads 2 --out peak.json "
                                "(benchmarks.throughput measures it first, in its own process)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="the device whose peak is measured (default cpu)")
    cli.add_run_options(p, "threads", threads=(0, "0: each library's own setting"))
    p.add_argument("--precisions", default="fp32,bf16", metavar="LIST",
                   help=f"comma-separated, from {', '.join(PRECISIONS)} (default fp32,bf16)")
    p.add_argument("--seconds", type=float, default=3.0, metavar="S",
                   help="seconds of multiplies per precision (default 3)")
    p.add_argument("--out", metavar="FILE", help="JSON file to write (default: print the peaks only)")
    args = p.parse_args(argv)
    precisions = [x for x in args.precisions.split(",") if x]
    bad = [x for x in precisions if x not in PRECISIONS]
    if bad or args.seconds <= 0 or args.threads < 0:
        p.error(f"--precisions from {', '.join(PRECISIONS)}; --seconds positive, --threads >= 0")
    result = measure(precisions, args.device, args.threads, args.seconds)
    if args.out:
        from common import atomic
        atomic.write_json(args.out, result)
    print(json.dumps({k: v.get("flops") for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput sweep: every backend at several batch sizes, on synthetic data, nothing else running.

    python -m benchmarks.throughput --backend all --batch-sizes 16,64,256 --iters 40 --repeats 2

Each (batch size, repeat) is one `run_all.py --dataset synthetic` run (so every backend still runs
alone in its own process, with the same thread count), without the quality probes, into
OUT/b<batch>-r<repeat>/. Per backend and batch the table gives the median of the runs' img/s
medians, the range of those medians across repeats (the between-run spread, which on a shared VM
is larger than any one run's IQR), the first step's seconds, peak memory and the harness's share
of wall time. Writes OUT/throughput.md and OUT/throughput.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import atomic, report  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="all")
    p.add_argument("--preset", default="mnist32")
    p.add_argument("--batch-sizes", default="16,64,256")
    p.add_argument("--iters", type=int, default=40, help="iterations per run (warm-up excluded from the statistics)")
    p.add_argument("--repeats", type=int, default=1, help="runs per batch size")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--out", help="folder to create (default: runs/throughput-<timestamp>)")
    args = p.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes takes comma-separated integers, got {args.batch_sizes!r}")
    if any(b <= 0 for b in args.batches) or args.iters <= 0 or args.repeats <= 0:
        p.error("--batch-sizes, --iters and --repeats must be positive")
    return args


def run_one(args, batch: int, out: Path) -> dict:
    cmd = [sys.executable, str(REPO / "run_all.py"), "--backend", args.backend, "--dataset", "synthetic",
           "--preset", args.preset, "--batch-size", str(batch), "--iters", str(args.iters),
           "--quality-every", "0", "--device", args.device, "--out", str(out), "--quiet"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results_file = out / "results.json"
    if not results_file.exists():
        raise SystemExit(f"benchmarks.throughput: run_all.py failed: {proc.stderr.strip()[-500:]}")
    return report.load_results(results_file)


def rows_from(runs: dict[int, list[dict]]) -> list[dict]:
    rows = []
    for batch, results in runs.items():
        for name in results[0]["backends"]:
            per_run = [r["backends"][name] for r in results]
            ok = [r for r in per_run if r["status"] == "ok"]
            if not ok:
                rows.append({"backend": name, "batch": batch, "status": per_run[0]["status"],
                             "reason": per_run[0].get("reason") or ""})
                continue
            medians = [r["summary"]["img_per_s_median"] for r in ok]
            s = ok[0]["summary"]
            rows.append({
                "backend": name, "batch": batch, "status": "ok", "runs": len(ok),
                "img/s": round(float(np.median(medians)), 1),
                "range across runs": f"{min(medians):.1f}-{max(medians):.1f}",
                "IQR (first run)": f"{s['img_per_s_iqr'][0]:.1f}-{s['img_per_s_iqr'][1]:.1f}",
                "first step s": round(float(np.median([r["summary"]["first_step_seconds"] for r in ok])), 3),
                "peak MiB": f"{max(r['summary']['peak_memory']['bytes'] for r in ok) / 2**20:.0f} "
                            f"({s['peak_memory']['kind']})",
                "harness overhead": f"{100 * max(r['summary'].get('harness_overhead_fraction', 0) for r in ok):.2f}%",
            })
    return rows


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out) if args.out else REPO / "runs" / f"throughput-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if out.exists():
        raise SystemExit(f"benchmarks.throughput: {out} already exists; choose a new --out")
    out.mkdir(parents=True)
    runs: dict[int, list[dict]] = {}
    for batch in args.batches:
        for k in range(args.repeats):
            print(f"batch {batch}, run {k + 1}/{args.repeats}", file=sys.stderr, flush=True)
            runs.setdefault(batch, []).append(run_one(args, batch, out / f"b{batch}-r{k + 1}"))
    rows = rows_from(runs)
    first = runs[args.batches[0]][0]
    prov = first["provenance"]
    command = "python -m benchmarks.throughput " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join([
        f"Command: `{command}`", "",
        f"- Machine: {prov.get('cpu')}, {prov.get('cpu_count')} logical CPUs, "
        + (", ".join(prov["gpus"]) if prov.get("gpus") else "no GPU"),
        "- Software: " + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items()),
        f"- Synthetic data, preset {args.preset}, {args.iters} iterations per run, threads "
        f"{first['config'].get('threads')}, spec-default float32; img/s is the median over runs of "
        "each run's median step (warm-up excluded)",
        f"- Code: git {(prov.get('git') or {}).get('commit')}", "",
        report.table(rows, "github"), ""])
    atomic.write_text(out / "throughput.md", text)
    atomic.write_json(out / "throughput.json", {"command": command, "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

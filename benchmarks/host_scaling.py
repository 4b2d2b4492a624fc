"""Scaling across hosts on loopback: each engine at 1 host x 1 device, 1 host x 2 devices and
2 hosts x 1 device, same global batch, synthetic data.

    python -m benchmarks.host_scaling --backend pytorch,tensorflow,mxnet,chainer,jax --iters 80 --repeats 3

Loopback is no network. The 2 "hosts" are 2 process groups on this machine that meet at
127.0.0.1 (run_all.py --nodes 2 --node-rank R --rdzv-endpoint 127.0.0.1:PORT, each with its own
--out; Chainer: one command with --nodes 2 --hostfile naming 127.0.0.1 and localhost, as
mpiexec takes it). They share the machine's cores and memory and talk through the kernel's
loopback device, so the table measures what each engine's multi-host path costs against its
one-host path at the same replica count (a second host can only cost here), never a cluster's
interconnect. Every layout gives each replica the same CPU threads: --threads is the machine's
cores for one host (which splits them over its replicas) and cores / 2 for each of 2 hosts.

The layouts run interleaved per backend (1x1, 1x2, 2x1, then the next repeat), so a machine
whose speed drifts shifts them alike; img/s is rank 0's median step over the global batch
(warm-up excluded), the median over repeats with their range beside it. "2 hosts vs 1 host" is
the ratio of the 2-hosts median to the 1-host 2-device median, with whether the repeats'
ranges are apart (3 repeats allow no rank test at 5%: overlapping ranges separate nothing).
OUT/host_scaling.json holds one record per run and the rows, OUT/host_scaling.md the table;
both are rewritten after every run, and the same command with the same --out continues an
interrupted study (finished runs kept, an unfinished one trained again)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from common import atomic, cli  # noqa: E402
from common.hostlink import free_port  # noqa: E402
from common.results import schema  # noqa: E402
from common.results.markdown import environment_lines, machine_line  # noqa: E402
from common.results.tables import table  # noqa: E402

# (label, hosts, devices per host)
LAYOUTS = (("1 host x 1 device", 1, 1), ("1 host x 2 devices", 1, 2), ("2 hosts x 1 device", 2, 1))
ENGINES = backends.NAMES  # every engine runs across hosts
RUN_TIMEOUT_S = 900  # one run of either layout; a hung host is killed, and the run counts as failed


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.host_scaling", __doc__,
                         epilog="docs/data-parallel.md#scaling-across-hosts-on-loopback")
    p.add_argument("--backend", default=",".join(ENGINES), metavar="LIST",
                   help=f"comma-separated engines, one at a time (default {','.join(ENGINES)})")
    cli.add_run_options(p, "batch_size", "iters", iters=(80, "80"))
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="runs per layout, interleaved (default 3)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="the study's folder; the same command with it again continues the study")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in ENGINES]
    if unknown or not args.backends:
        p.error(f"--backend {args.backend!r}: choose from {', '.join(ENGINES)}")
    problem = cli.bounds_problem(args, ("batch_size", "iters"))
    if problem:
        p.error(problem)
    if args.repeats < 1:
        p.error(f"--repeats must be positive, got {args.repeats}")
    if args.batch_size % 2:
        p.error(f"--batch-size {args.batch_size}: 2 replicas need an even global batch")
    return args


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True)


def _wait_all(procs: list[subprocess.Popen]) -> list[int]:
    """Every process's exit status; past RUN_TIMEOUT_S every process group left is killed."""
    try:
        return [p.wait(timeout=RUN_TIMEOUT_S) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        return [p.wait() for p in procs]


def run_layout(args, backend: str, hosts: int, devices: int, out: Path) -> dict | None:
    """One run of one layout; rank 0's results.json, None if it wrote none."""
    cores = os.cpu_count() or 1
    base = dict(backend=backend, dataset="synthetic", batch_size=args.batch_size, iters=args.iters,
                quality_every=0, quiet=True, figures=False, threads=max(1, cores // hosts))
    if hosts == 1:
        procs = [_start(cli.run_all_command(**base, devices=devices, out=str(out)), out.with_suffix(".log"))]
        rank0 = out
    elif backend == "chainer":  # MPI's own way: one command, mpiexec starts both hosts' processes
        out.parent.mkdir(parents=True, exist_ok=True)
        hostfile = out.with_suffix(".hosts")
        hostfile.write_text("127.0.0.1\nlocalhost\n")  # two names: MPICH starts both here
        procs = [_start(cli.run_all_command(**base, nodes=hosts, hostfile=str(hostfile), out=str(out)),
                        out.with_suffix(".log"))]
        rank0 = out
    else:
        endpoint = f"127.0.0.1:{free_port()}"
        procs = [_start(cli.run_all_command(**base, nodes=hosts, node_rank=r, rdzv_endpoint=endpoint,
                                            out=str(out / f"host{r}")), out / f"host{r}.log")
                 for r in range(hosts)]
        rank0 = out / "host0"
    _wait_all(procs)
    path = rank0 / "results.json"
    return schema.load_results(path) if path.exists() else None


def record(results: dict | None, backend: str, layout: str, repeat: int) -> dict:
    r = ((results or {}).get("backends") or {}).get(backend) or {}
    speed = (r.get("summary") or {}).get("img_per_s_median") if r.get("status") == "ok" else None
    p = r.get("parallel") or {}
    return {"backend": backend, "layout": layout, "repeat": repeat, "status": r.get("status", "no result"),
            "img_per_s": speed, "replicas": p.get("replicas", 1), "engine": p.get("engine", "single device"),
            "reason": r.get("reason")}


def rows(records: list[dict]) -> list[dict]:
    """Per backend and layout: median img/s over its finished runs, range, efficiency against
    linear from 1 replica, and the 2-host layout against the 1-host one of the same replicas."""
    out = []
    for backend in dict.fromkeys(r["backend"] for r in records):
        speeds = {label: [r["img_per_s"] for r in records if r["backend"] == backend
                          and r["layout"] == label and r["img_per_s"]] for label, _, _ in LAYOUTS}
        med = {k: statistics.median(v) for k, v in speeds.items() if v}
        for label, hosts, devices in LAYOUTS:
            mine = [r for r in records if r["backend"] == backend and r["layout"] == label]
            if not mine:
                continue
            v, replicas = speeds[label], hosts * devices
            row = {"backend": backend, "layout": label, "replicas": replicas,
                   "engine": next((r["engine"] for r in mine if r["img_per_s"]), mine[-1]["engine"]),
                   "img/s": round(med[label], 1) if v else None,
                   "range": f"{min(v):.1f}-{max(v):.1f}" if len(v) > 1 else "",
                   "runs": f"{len(v)}/{len(mine)} ok",
                   "efficiency": (round(med[label] / (replicas * med[LAYOUTS[0][0]]), 2)
                                  if v and LAYOUTS[0][0] in med else None),
                   "2 hosts vs 1 host": ""}
            one_host = speeds[LAYOUTS[1][0]]
            if hosts > 1 and v and one_host:
                apart = max(v) < min(one_host) or min(v) > max(one_host)
                row["2 hosts vs 1 host"] = (
                    f"{med[label] / statistics.median(one_host):.2f}x, "
                    + ("one run each: not separated" if min(len(v), len(one_host)) < 2 else
                       "ranges apart" if apart else "ranges overlap: not separated"))
            out.append(row)
    return out


def write(out: Path, command: str, batch_size: int, records: list[dict], runs: list[dict],
          loads: list[float]) -> str:
    table_rows = rows(records)
    first = runs[0] if runs else {"provenance": {}}
    prov = first["provenance"]
    failed = [r for r in records if not r["img_per_s"]]
    text = "\n".join([
        f"Command: `{command}`", "",
        "**Loopback is no network**: the 2 hosts are 2 process groups on this one machine, sharing "
        "its cores and memory and talking over 127.0.0.1, so this measures each engine's "
        "multi-host path against its one-host path, never a cluster's interconnect.", "",
        machine_line(prov),
        f"- synthetic data, preset mnist32, global batch {batch_size}, "
        "the same CPU threads per replica in every layout; img/s is rank 0's median step over "
        "the global batch (warm-up excluded), median over repeats (range beside it); "
        "efficiency = img/s / (replicas x img/s of 1 host x 1 device)",
        *([f"- 1-minute load average before each run: {min(loads):.2f}-{max(loads):.2f}"] if loads else []),
        *dict.fromkeys(line for run in runs for line in environment_lines(run)),
        f"- Code: git {(prov.get('git') or {}).get('commit')}",
        *[f"- not counted: {r['backend']}, {r['layout']}, repeat {r['repeat']}: {r['status']}"
          + (f" ({r['reason']})" if r.get("reason") else "") for r in failed], "",
        table(table_rows, "github") if table_rows else "(no run finished yet)", ""])
    atomic.write_text(out / "host_scaling.md", text)
    atomic.write_json(out / "host_scaling.json", {"command": command, "loads": loads,
                                                  "records": records, "rows": table_rows})
    return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = args.out
    command = "python -m benchmarks.host_scaling " + " ".join(argv)
    state = out / "host_scaling.json"
    if out.exists() and not state.exists():
        raise SystemExit(f"benchmarks.host_scaling: {out} exists and holds no study; choose a new --out")
    kept = json.loads(state.read_text()) if state.exists() else {}
    if kept and kept.get("command") != command:
        raise SystemExit(f"benchmarks.host_scaling: {out} holds the study of `{kept.get('command')}`; "
                         "run that command to continue it, or choose a new --out")
    records, loads = kept.get("records", []), kept.get("loads", [])
    done = {(r["backend"], r["layout"], r["repeat"]) for r in records}
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for repeat in range(args.repeats):
        for backend in args.backends:
            for label, hosts, devices in LAYOUTS:
                folder = out / f"r{repeat}" / backend / f"h{hosts}d{devices}"
                if (backend, label, repeat) in done:
                    found = folder / ("host0" if hosts > 1 and backend != "chainer" else "") / "results.json"
                    if found.exists():
                        runs.append(schema.load_results(found))
                    continue
                if folder.exists():  # an interrupted attempt: trained again
                    shutil.rmtree(folder)
                print(f"repeat {repeat + 1}/{args.repeats}: {backend}, {label}", file=sys.stderr, flush=True)
                loads.append(os.getloadavg()[0])
                results = run_layout(args, backend, hosts, devices, folder)
                records.append(record(results, backend, label, repeat))
                if results:
                    runs.append(results)
                write(out, command, args.batch_size, records, runs, loads)
    print(write(out, command, args.batch_size, records, runs, loads))
    return 0 if all(r["img_per_s"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())

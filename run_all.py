#!/usr/bin/env python3
"""Train the spec's DCGAN with every backend, one after another, and compare them.

    python run_all.py --backend all --dataset mnist

Each backend runs in its own subprocess (common/harness/worker.py) so timings never share the machine
and a crash, OOM or missing framework in one never takes down the others. This process imports
no framework: it resolves the data once, draws the shared initial weights, runs the children and
writes results.json, losses.csv, sample grids, plots and report.md into the run folder.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from common import atomic, data, sysinfo  # noqa: E402
from common.data import image_folder, noise
from common.harness import replicas
from common.results import compare, markdown, schema, tables
from common import canonical
from common.errors import DataError  # noqa: E402
from common.spec import DATASET_PRESETS, FOLDER_PRESET, PRESETS, model_spec  # noqa: E402

DEFAULT_ITERS = 500
DEFAULT_BATCH = 64
STDERR_TAIL_LINES = 40
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(Exception):
    """Bad input: one line naming the fix, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv):
    p = OneLineParser(prog="run_all.py", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", default="all",
                   help=f"'all' or a comma-separated list of: {', '.join(backends.NAMES)}")
    p.add_argument("--dataset", default="mnist",
                   help="mnist | mnist-5k | synthetic | cifar10 | PATH (a folder of .png/.jpg images)")
    p.add_argument("--preset", choices=list(PRESETS), help="network preset (default: the dataset's)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, help=f"training iterations (default {DEFAULT_ITERS})")
    length.add_argument("--epochs", type=float, help="training length in epochs of the dataset")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="comma-separated training seeds (e.g. 0,1,2): every backend "
                                   "trains once per seed and the report gives mean and spread")
    p.add_argument("--shared-init", action=argparse.BooleanOptionalAction, default=True,
                   help="every backend starts from the same numpy-drawn weights")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="CPU threads given to every framework alike")
    p.add_argument("--channels-last", action="store_true", help="fast path (PyTorch); off for parity")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 fast path (PyTorch autocast, Keras mixed_bfloat16); off for parity")
    p.add_argument("--xla", action="store_true", help="XLA-compiled step (TensorFlow); off for parity")
    p.add_argument("--compile", action="store_true", help="torch.compile'd G and D (PyTorch); off for parity")
    p.add_argument("--devices", type=int, default=1,
                   help="data-parallel replicas, each with its framework's own engine (README "
                        "'Data parallel'); each trains on 1/N of every --batch-size batch")
    p.add_argument("--sync-bn", action="store_true",
                   help="with --devices: BN over the global batch (PyTorch SyncBatchNorm, CUDA "
                        "only; Chainer MultiNodeBatchNormalization); default per-replica BN")
    p.add_argument("--nodes", type=int, default=1,
                   help="hosts of one data-parallel run (PyTorch, torchrun): start run_all.py with "
                        "the same arguments on each; --devices replicas per host")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="with --nodes: where the hosts meet (one of them, a free port)")
    p.add_argument("--data-dir", help="folder with the MNIST .gz (or raw idx) files or the CIFAR-10 "
                                      "python tarball; no download")
    p.add_argument("--out", help="run folder to create (default: a new runs/<timestamp>)")
    p.add_argument("--timeout", type=float, help="seconds one backend may take before it is stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show framework log output")
    p.add_argument("--quality-every", type=int, metavar="K",
                   help="FD of the fixed-z samples every K iterations, for the time-to-quality "
                        "curve (default: about 10 points per run, a multiple of 10; 0: off)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="write each backend's checkpoint (native state + canonical weights) every "
                        "N iterations into backends/<name>/checkpoints/, for --resume")
    p.add_argument("--resume", metavar="DIR", help="continue the unfinished backends of run DIR "
                   "from their last checkpoints, with DIR's stored configuration")
    p.add_argument("--list", action="store_true", help="show installed backends and their devices")
    p.add_argument("--report", metavar="DIR", help="rebuild DIR's report from its results.json; no training")
    p.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"),
                   help="print what changed from run DIR_A to run DIR_B (speed, losses, quality)")
    args = p.parse_args(argv)

    if args.backend == "all":
        args.backends = list(backends.NAMES)
    else:
        args.backends = [b.strip() for b in args.backend.split(",") if b.strip()]
        unknown = [b for b in args.backends if b not in backends.REGISTRY]
        if unknown or not args.backends:
            p.error(f"unknown backend {', '.join(unknown) or repr(args.backend)}; "
                    f"valid: all, {', '.join(backends.NAMES)}")
    try:
        args.seed_list = ([int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds
                          else [args.seed])
    except ValueError:
        p.error(f"--seeds takes comma-separated integers like 0,1,2, got {args.seeds!r}")
    if not args.seed_list or len(set(args.seed_list)) != len(args.seed_list):
        p.error(f"--seeds needs distinct integers like 0,1,2, got {args.seeds!r}")
    args.seed = args.seed_list[0]
    if args.quality_every is not None and args.quality_every < 0:
        p.error(f"--quality-every must be 0 (off) or positive, got {args.quality_every}")
    args.given = _given_options(p, argv)
    for name in ("iters", "epochs", "batch_size", "threads", "timeout", "devices", "nodes",
                 "checkpoint_every"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    try:
        replicas.check_batch(args.batch_size, args.devices * args.nodes)
    except ValueError as exc:
        p.error(str(exc).replace("--devices", "--devices x --nodes" if args.nodes > 1 else "--devices"))
    if args.nodes > 1:
        several = [b for b in args.backends if b not in replicas.MULTI_HOST]
        if several:
            p.error(f"--nodes: only {', '.join(replicas.MULTI_HOST)} runs across hosts from run_all.py "
                    f"in this version; pass --backend {','.join(replicas.MULTI_HOST)}")
        if not args.rdzv_endpoint:
            p.error("--nodes needs --rdzv-endpoint HOST:PORT, the same on every host")
    if args.checkpoint_every and args.devices * args.nodes > 1:
        p.error("--checkpoint-every with --devices/--nodes > 1 is not supported in this version "
                "(each replica would need its own checkpoint); drop one of them")
    if args.sync_bn and args.devices * args.nodes == 1:
        p.error("--sync-bn needs --devices 2 or more (one device already normalises the whole batch)")
    return args


def _given_options(p: argparse.ArgumentParser, argv) -> set[str]:
    """The dests set on the command line (abbreviations included): parsed again with no defaults."""
    saved = {a.dest: a.default for a in p._actions}  # noqa: SLF001 - argparse has no public list
    try:
        for a in p._actions:  # noqa: SLF001
            a.default = argparse.SUPPRESS
        return set(vars(p.parse_args(argv)))
    finally:
        for a in p._actions:  # noqa: SLF001
            a.default = saved[a.dest]


def resume_args(args):
    """--resume DIR: args become DIR's stored configuration; refused (UsageError) if DIR is not
    a run folder, was written by a newer dcgan-bench, or the command line asks for other values."""
    from common.harness import resume
    run_dir = Path(args.resume)
    results = _load_run(run_dir)
    problem = resume.conflicts(args, args.given, results.get("config") or {})
    if problem:
        raise UsageError(problem)
    try:
        resume.apply(args, results["config"], results["dataset"])
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{run_dir / 'results.json'}: no usable stored configuration "
                         f"({type(exc).__name__}: {exc}); this run cannot be resumed") from None
    # As the run was started: 'all' or named backends (a named one that is skipped is an error).
    args.backend = "all" if args.backends == list(backends.NAMES) else ",".join(args.backends)
    args.stored_results = results
    return args


# ----- run folder -----
def make_run_dir(out: str | None) -> Path:
    if out:
        path = Path(out)
        if path.exists():
            raise UsageError(f"--out {path} already exists; choose a new folder (runs are never "
                             "overwritten)")
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path, n = REPO / "runs" / stamp, 1
        while path.exists():
            path, n = REPO / "runs" / f"{stamp}-{n}", n + 1
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"cannot create run folder {path}: {exc.strerror}; pass a writable --out") from None
    return path


# ----- one backend in a child process -----
def run_child(name: str, config: dict, run_dir: Path, timeout: float | None, verbose: bool
              ) -> tuple[dict, bool]:
    """Run one backend to its end; returns its result and whether the run was interrupted."""
    out = run_dir / "backends" / name
    out.mkdir(parents=True, exist_ok=True)
    config = dict(config, backend=name, out_dir=str(out))
    atomic.write_json(out / "config.json", config)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", str(config["options"]["threads"]))
    if not verbose:  # frameworks' own start-up chatter stays out of the user's terminal
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    t0 = time.perf_counter()
    command = replicas.worker_command(name, config["options"].get("devices", 1), str(out / "config.json"),
                                      config.get("nodes", 1), config.get("rdzv_endpoint"),
                                      config["options"].get("threads"))
    launcher = command[1:3] != ["-m", "common.harness.worker"]
    # A launcher and its replicas get their own process group: when it ends, none outlives it.
    # Its stdout joins the stderr pump: mpiexec reports a failed replica there.
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if launcher else None,
                            stderr=subprocess.STDOUT if launcher else subprocess.PIPE,
                            start_new_session=launcher)
    stream = proc.stdout if launcher else proc.stderr
    pump = threading.Thread(target=_forward_stderr, args=(stream, tail, out / "stderr.log"),
                            daemon=True)
    pump.start()
    status = None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        status = "timeout"
        _stop(proc)
    except KeyboardInterrupt:
        status = "interrupted"
        _stop(proc)  # a terminal's Ctrl-C reached the child too; let it write its result
    if launcher:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any replica the launcher left behind
        except ProcessLookupError:
            pass
    pump.join(5)
    result = _finish_child(name, out, proc, tail, status, time.perf_counter() - t0)
    if launcher and not status and result["status"] in ("failed", "interrupted"):
        # A replica failed and the launcher stopped the rest: unless rank 0 failed first, say which
        # replica it was; rank 0's own error (a lost peer, a stop) follows from it.
        first = replicas.first_failure(list(tail), out)
        if first and first[0] != 0:
            result.update(status="failed", reason=f"{first[1]}; the launcher stopped the other "
                          f"replicas (rank 0: {result['reason'][:200]})")
    return result, status == "interrupted"


def _forward_stderr(stream, tail, log_path: Path) -> None:
    """Show the child's progress bar live, keep a tail for the result, and a full log file."""
    line = bytearray()
    with open(log_path, "wb") as log:
        while chunk := stream.read1(4096):  # whatever is there: tqdm's \r updates arrive live
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()
            log.write(chunk)
            for b in chunk:
                if b in (10, 13):  # \n or tqdm's \r
                    if line.strip():
                        tail.append(line.decode(errors="replace"))
                    line.clear()
                else:
                    line.append(b)
    if line.strip():
        tail.append(line.decode(errors="replace"))


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()



def _finish_child(name, out: Path, proc, tail, status, seconds) -> dict:
    result_file = out / "result.json"
    result = None
    if result_file.exists():
        try:
            result = json.loads(result_file.read_text())
        except ValueError:
            result = None
    if result is None:  # the interpreter died before writing anything: say how
        code = proc.returncode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exited with status {code} without a result")
        result = {"backend": name, "status": "failed", "reason": f"the backend process {how}"}
    if status:  # the parent's view wins: it stopped the child
        result["status"] = status
        result["reason"] = ("exceeded --timeout" if status == "timeout" else "interrupted by signal")
    result["process_seconds"] = seconds
    result["exit_code"] = proc.returncode
    if result["status"] not in ("ok", "skipped"):
        # lines of progress bars are noise in an error report
        result["stderr_tail"] = [l for l in tail if "it/s]" not in l and "s/it]" not in l][-20:]
    return result


# ----- the run -----
def child_dataset(meta: dict) -> dict:
    """How a child loads exactly what the parent resolved, without touching the network:
    verified MNIST files from their folder, the 5k digits, or the same seeded synthetic set."""
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    if source.get("decoded"):  # cifar10 or an image folder: the pixels the parent decoded
        return {"name": meta["requested"], "data_dir": None, "decoded": source["decoded"]}
    return {"name": meta["name"], "data_dir": source.get("data_dir") or source.get("cache_dir")}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        return list_backends()
    try:
        if args.report:
            return rebuild_report(Path(args.report))
        if args.compare:
            print(compare.compare_runs(*(_load_run(Path(d)) for d in args.compare)))
            return 0
        if args.resume:
            args = resume_args(args)
    except UsageError as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM (a scheduler, `timeout`) ends the run like Ctrl-C: children stopped, results kept.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(args)
    except (UsageError, DataError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run(args) -> int:
    if args.device == "gpu" and not sysinfo.gpu_models():
        raise UsageError("--device gpu: no GPU is visible on this machine (nvidia-smi lists none); "
                         "use --device cpu or --device auto")
    preset = args.preset or DATASET_PRESETS.get(
        args.dataset, FOLDER_PRESET if image_folder.is_folder_dataset(args.dataset) else "mnist32")
    spec = model_spec(preset)  # --preset choices are validated by argparse
    dataset = data.load_dataset(args.dataset, spec.preset, data_dir=args.data_dir, seed=args.seed)
    try:
        plan = noise.BatchPlan(len(dataset.images), args.batch_size, args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    iters = (args.iters if args.iters else
             max(1, round(args.epochs * plan.batches_per_epoch)) if args.epochs else DEFAULT_ITERS)
    run_dir = Path(args.resume) if args.resume else make_run_dir(args.out)

    command = "python run_all.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    config = {"backends": args.backends, "dataset": args.dataset, "preset": preset, "iters": iters,
              "batch_size": args.batch_size, "seed": args.seed, "shared_init": args.shared_init,
              "device": args.device, "threads": args.threads, "channels_last": args.channels_last,
              "bf16": args.bf16, "xla": args.xla, "compile": args.compile, "timeout": args.timeout,
              "devices": args.devices, "sync_bn": args.sync_bn, "nodes": args.nodes}
    if args.checkpoint_every:
        config["checkpoint_every"] = args.checkpoint_every
    if len(args.seed_list) > 1:
        config["seeds"] = args.seed_list
    results = {"schema_version": schema.SCHEMA_VERSION, "command": command,
               "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               "config": config, "dataset": dataset.meta, "provenance": sysinfo.provenance(),
               "backends": {}}
    if args.resume:  # the stored results, with this resume recorded
        resumed = {k: results[k] for k in ("command", "started", "provenance")}
        results = args.stored_results
        results["resumed"] = results.get("resumed", []) + [resumed]
    quality = quality_config(dataset.meta["name"], spec, iters, args.quality_every,
                             len(dataset.images), child_dataset(dataset.meta).get("decoded"))
    config["quality"] = quality
    why_no_quality = None if quality else quality_unavailable(dataset.meta["name"], spec)
    if why_no_quality:
        results["quality_unavailable"] = why_no_quality
    child_config = {
        "preset": preset, "iters": iters, "batch_size": args.batch_size,
        "data_seed": args.seed,  # the data stay those the parent resolved, whatever the seed
        "dataset": child_dataset(dataset.meta), "quiet": args.quiet, "quality": quality,
        "nodes": args.nodes, "rdzv_endpoint": args.rdzv_endpoint,
        "options": {"device": args.device, "threads": args.threads,
                    "channels_last": args.channels_last, "bf16": args.bf16, "xla": args.xla,
                    "compile": args.compile, "verbose": args.verbose, "devices": args.devices,
                    "sync_bn": args.sync_bn, "nodes": args.nodes},
    }
    child_config.update(checkpoint_every=args.checkpoint_every, resume=bool(args.resume))
    print(f"dcgan-bench: {dataset.meta['name']} ({len(dataset.images)} images), preset {preset}, "
          f"{iters} iterations of batch {args.batch_size}"
          + (f", seeds {args.seeds}" if len(args.seed_list) > 1 else "")
          + f"; {'resuming' if args.resume else 'writing'} {_rel(run_dir)}", file=sys.stderr)
    del dataset  # children load their own copy; keep the parent small

    explicit = args.backend != "all"
    interrupted = False
    judge = QualityJudge(results, spec) if quality else None
    for k, seed in enumerate(args.seed_list):
        # The first seed's run is the run folder itself (figures, report); further seeds train
        # the same way into seeds/<seed>/, and the report adds their mean and spread.
        seed_dir = run_dir if k == 0 else run_dir / "seeds" / str(seed)
        seed_results = (results["backends"] if k == 0
                        else results.setdefault("by_seed", {}).setdefault(str(seed), {}))
        interrupted = run_seed(args, spec, seed, seed_dir, seed_results, child_config, results,
                               run_dir, judge, interrupted)

    results["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    atomic.write_json(run_dir / "results.json", results)
    try:
        markdown.write_report(run_dir, results)
    except Exception as exc:  # noqa: BLE001 - results.json is already safe; say what failed
        print(f"run_all.py: writing the report failed ({type(exc).__name__}: {exc}); "
              f"results are in {_rel(run_dir / 'results.json')}", file=sys.stderr)
        return 1
    print(tables.stdout_table(results))
    print(f"\nresults: {_rel(run_dir / 'results.json')}  report: {_rel(run_dir / 'report.md')}")
    if interrupted:
        return EXIT_INTERRUPTED
    every = [results["backends"], *results.get("by_seed", {}).values()]
    bad = [n for runs in every for n, r in runs.items()
           if r["status"] not in ("ok", "skipped") or (explicit and r["status"] == "skipped")]
    return 1 if bad else 0


# ----- sample quality (numpy only, in this process: the children's timings are not disturbed) -----
def quality_config(dataset: str, spec, iters: int, every: int | None, n_images: int = 0,
                   decoded: dict | None = None) -> dict | None:
    """What the children compute for the evaluator; None where no evaluator fits the data."""
    from common.metrics import evaluate, fid
    if fid.supports(dataset, spec.preset):  # RGB: FID of the final samples only (no probes:
        n = fid.sample_count(n_images)      # an Inception pass costs seconds per image on a CPU)
        if decoded and n >= 2 and fid.unavailable_reason() is None:
            return {"kind": "fid", "samples": n, "every": 0, "reference": decoded}
        return None
    if not evaluate.supports(dataset, spec.preset):
        return None
    if every is None:  # ~10 points; a multiple of 10 so GPU backends that fetch losses every
        every = max(10, round(iters / 10, -1))  # 10 steps probe at a step boundary they reached
    return {"samples": evaluate.SAMPLE_COUNT, "every": every}


def quality_unavailable(dataset: str, spec) -> str | None:
    """For an RGB run without FID, why (results.json and the report say it); else None."""
    from common.metrics import fid
    if not fid.supports(dataset, spec.preset):
        return None
    return fid.unavailable_reason() or "FID unavailable: fewer than 4 training images (FID needs 2N real ones)"


class QualityJudge:
    """Scores each finished backend's fixed-z samples, and once the real-vs-real floor."""

    def __init__(self, results: dict, spec):
        self.results, self.spec = results, spec
        self.evaluator = None

    def assess(self, result: dict, backend_dir: Path, seed: int) -> None:
        samples_file = backend_dir / "quality_samples.npy"
        if not samples_file.exists():
            return
        try:
            if self.evaluator is None:
                if self.results["config"]["quality"].get("kind") == "fid":
                    from common.metrics.fid import FIDEvaluator, describe
                    self.evaluator = FIDEvaluator(self.results["config"]["quality"])
                else:
                    from common.metrics.evaluate import Evaluator, describe
                    self.evaluator = Evaluator()
                self.results["quality_info"] = describe(self.evaluator)
                self.results["quality_floor"] = self.evaluator.real_floor(self.results["config"]["seed"])
            result["quality"] = self.evaluator.evaluate(np.load(samples_file, allow_pickle=False), seed)
        except Exception as exc:  # noqa: BLE001 - quality is reported missing, training is kept
            result["quality_error"] = f"{type(exc).__name__}: {exc}"


# ----- reports of finished runs -----
def _load_run(run_dir: Path) -> dict:
    try:
        return schema.load_results(run_dir / "results.json")
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no results.json there; pass a run folder made by run_all.py") from None
    except ValueError as exc:
        raise UsageError(f"{run_dir / 'results.json'}: unreadable ({exc})") from None


def rebuild_report(run_dir: Path) -> int:
    results = _load_run(run_dir)
    written = markdown.write_report(run_dir, results)
    print(tables.stdout_table(results))
    print(f"\nreport: {_rel(run_dir / 'report.md')} ({len(written)} files rewritten)")
    return 0


def run_seed(args, spec, seed, seed_dir, seed_results, child_config, results, run_dir, judge,
             interrupted) -> bool:
    """Every backend once with this training seed (init weights, noise, data order); returns
    whether the run was interrupted."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    init_path = None
    if args.shared_init:
        init_path = seed_dir / "init_weights.npz"
        canonical.save(init_path, canonical.draw_initial_weights(spec, seed), spec)
    child_config = dict(child_config, seed=seed, init_weights=str(init_path) if init_path else None,
                        options=dict(child_config["options"], seed=seed))
    for name in args.backends:
        if args.resume and seed_results.get(name, {}).get("status") in ("ok", "skipped"):
            continue  # --resume keeps finished backends as they are
        if args.resume:  # a result left by the stopped attempt must not stand for this one;
            attempt = seed_dir / "backends" / name  # its stderr log is kept beside the new one
            (attempt / "result.json").unlink(missing_ok=True)
            if (attempt / "stderr.log").exists():
                os.replace(attempt / "stderr.log", attempt / "stderr.before-resume.log")
        reason = backends.unavailable_reason(name)
        if reason:
            seed_results[name] = {"backend": name, "status": "skipped", "reason": reason}
            if not args.quiet and seed_dir == run_dir:
                print(f"{name:>10}: skipped: {reason}", file=sys.stderr)
        elif interrupted:
            seed_results[name] = {"backend": name, "status": "interrupted",
                                  "reason": "not started: the run was interrupted"}
        else:
            seed_results[name], interrupted = run_child(
                name, child_config, seed_dir, args.timeout, args.verbose)
            if judge and not interrupted:
                judge.assess(seed_results[name], seed_dir / "backends" / name, seed)
        atomic.write_json(run_dir / "results.json", results)  # partial results survive
    return interrupted


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def list_backends() -> int:
    from tabulate import tabulate
    rows = []
    for name in backends.NAMES:
        reason = backends.unavailable_reason(name)
        if reason:
            rows.append([name, "no", "", reason])
            continue
        proc = subprocess.run([sys.executable, "-m", "common.harness.worker", "--probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([name, "yes", info["version"], ", ".join(info["devices"])])
        except (ValueError, IndexError, KeyError):
            rows.append([name, "broken", "", (proc.stderr.strip().splitlines() or ["?"])[-1]])
    print(tabulate(rows, headers=["backend", "available", "version", "devices / reason"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

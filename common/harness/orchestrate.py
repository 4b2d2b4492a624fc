"""One run: the data resolved once, the shared initial weights drawn, every backend trained in
its own child process per training seed, results.json kept current, the report written.

This process imports no framework; the children (common/harness/worker.py) do.
"""
from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import backends
from common import atomic, canonical, data, options, sysinfo
from common.data import image_folder, noise
from common.harness import environment, interrupts, reporting
from common.harness.child import run_child
from common.harness.quality import QualityJudge, quality_config, quality_unavailable, target_problem
from common.harness.runfolder import check_out, make_run_dir, rel
from common.options import DEFAULT_ITERS, UsageError
from common.results import schema
from common.spec import DATASET_PRESETS, FOLDER_PRESET, model_spec

EXIT_INTERRUPTED = 130


def child_dataset(meta: dict) -> dict:
    """How a child loads exactly what the parent resolved, without touching the network:
    verified MNIST files from their folder, the 5k digits, or the same seeded synthetic set."""
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    if source.get("decoded"):  # cifar10 or an image folder: the pixels the parent decoded
        return {"name": meta["requested"], "data_dir": None, "decoded": source["decoded"]}
    return {"name": meta["name"], "data_dir": source.get("data_dir") or source.get("cache_dir")}


def run(args) -> int:
    """Train as args say (parsed by run_all.py, or the stored configuration under --resume);
    the exit status: 0, 1 if a backend did not finish, EXIT_INTERRUPTED."""
    if not args.resume:
        check_out(args.out)  # before any data is loaded or downloaded
    # Every label's interpreter runs the project's code and, for NAME@ENV, imports NAME's
    # framework: a bad environment stops the run here, before anything is loaded or trained.
    args.backends = environment.expand_all(args.backends)  # all@ENV: stored expanded, for --resume
    args.environments = environment.check(args.backends)
    if args.device == "gpu" and not sysinfo.gpu_models():
        raise UsageError("--device gpu: no GPU is visible on this machine (nvidia-smi lists none); "
                         "use --device cpu or --device auto")
    preset = args.preset or DATASET_PRESETS.get(
        args.dataset, FOLDER_PRESET if image_folder.is_folder_dataset(args.dataset) else "mnist32")
    spec = model_spec(preset)  # --preset choices are validated by argparse
    problem = target_problem(args.target_fd, args.quality_every, args.dataset, spec,
                             args.devices * args.nodes)
    if problem:
        raise UsageError(problem)
    with interrupts.process.raising():  # a Ctrl-C while data load or download: nothing written yet
        dataset = data.load_dataset(args.dataset, spec.preset, data_dir=args.data_dir, seed=args.seed)
    try:
        plan = noise.BatchPlan(len(dataset.images), args.batch_size, args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    iters = (args.iters if args.iters else
             max(1, round(args.epochs * plan.batches_per_epoch)) if args.epochs else DEFAULT_ITERS)
    run_dir = Path(args.resume) if args.resume else make_run_dir(args.out)

    command = "python run_all.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    config = options.stored_config(args, preset=preset, iters=iters)
    results = {"schema_version": schema.SCHEMA_VERSION, "command": command,
               "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               "config": config, "dataset": dataset.meta, "provenance": sysinfo.provenance(),
               "backends": {}}
    if args.resume:  # the stored results, with this resume recorded
        resumed = {k: results[k] for k in ("command", "started", "provenance")}
        results = args.stored_results
        results["resumed"] = results.get("resumed", []) + [resumed]
    quality = quality_config(dataset.meta["name"], spec, iters, args.quality_every,
                             len(dataset.images), child_dataset(dataset.meta).get("decoded"),
                             args.target_fd)
    config["quality"] = quality
    why_no_quality = None if quality else quality_unavailable(dataset.meta["name"], spec)
    if why_no_quality:
        results["quality_unavailable"] = why_no_quality
    child_config = {
        **options.child_settings(args, preset=preset, iters=iters),
        "data_seed": args.seed,  # the data stay those the parent resolved, whatever the seed
        "dataset": child_dataset(dataset.meta), "quality": quality,
        "options": options.backend_settings(args),  # its seed is set per training seed
        "resume": bool(args.resume),
    }
    print(f"dcgan-bench: {dataset.meta['name']} ({len(dataset.images)} images), preset {preset}, "
          f"{iters} iterations of batch {args.batch_size}"
          + (f", seeds {args.seeds}" if len(args.seed_list) > 1 else "")
          + f"; {'resuming' if args.resume else 'writing'} {rel(run_dir)}", file=sys.stderr)
    del dataset  # children load their own copy; keep the parent small
    # On disk before the first child starts: a run whose every process is killed (a machine
    # stopped, SIGKILL to the group) during its first backend still resumes from its checkpoints.
    atomic.write_json(run_dir / "results.json", results)

    explicit = args.backend != "all" and not args.backend.startswith("all@")
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
    if not reporting.finish_run(run_dir, results, figures=args.figures):
        return 1
    if interrupted or interrupts.process.count:
        reporting.how_to_go_on(run_dir, results, interrupts.process.name())
        return EXIT_INTERRUPTED
    every = [results["backends"], *results.get("by_seed", {}).values()]
    bad = [n for runs in every for n, r in runs.items()
           if r["status"] not in ("ok", "skipped") or (explicit and r["status"] == "skipped")]
    return 1 if bad else 0


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
    for name in args.backends:  # a label: 'jax', or 'jax@newest' in another environment
        plain, env = name.partition("@")[0], args.environments[name]
        if args.resume and seed_results.get(name, {}).get("status") in ("ok", "skipped"):
            continue  # --resume keeps finished backends as they are
        if args.resume:  # a result left by the stopped attempt must not stand for this one;
            attempt = seed_dir / "backends" / schema.label_folder(name)  # its stderr log is kept beside the new one
            (attempt / "result.json").unlink(missing_ok=True)
            if (attempt / "stderr.log").exists():
                os.replace(attempt / "stderr.log", attempt / "stderr.before-resume.log")
        reason = None if env.get("framework") else backends.unavailable_reason(plain)
        if reason:
            seed_results[name] = {"backend": plain, "status": "skipped", "reason": reason,
                                  "environment": env}
            if not args.quiet and seed_dir == run_dir:
                print(f"{name:>10}: skipped: {reason}", file=sys.stderr)
        elif interrupted or interrupts.process.count:
            seed_results[name] = {"backend": plain, "status": "interrupted",
                                  "reason": "not started: the run was interrupted", "environment": env}
        else:
            seed_results[name], interrupted = run_child(
                name, child_config, seed_dir, args.timeout, args.verbose, env)
            if judge and not interrupted:
                judge.assess(seed_results[name], seed_dir / "backends" / schema.label_folder(name), seed)
        atomic.write_json(run_dir / "results.json", results)  # partial results survive
    return interrupted

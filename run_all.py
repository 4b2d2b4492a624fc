#!/usr/bin/env python3
"""Train the spec's DCGAN with every backend, one after another, and compare them.

    python run_all.py --backend all@newest --dataset mnist   (each framework at its newest release)
    python run_all.py --backend all --dataset mnist          (every backend in this interpreter)

Each backend runs in its own subprocess (common/harness/worker.py) so timings never share the machine
and a crash, OOM or missing framework in one never takes down the others. This process imports
no framework: it resolves the data once, draws the shared initial weights, runs the children and
writes results.json, losses.csv, sample grids, plots and report.md into the run folder.

This file is the command line only: the options are defined in common/options.py, the run in
common/harness/ (orchestrate.py and the modules it names).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from common import cli, options, replicas  # noqa: E402
from common.errors import DataError  # noqa: E402
from common.options import EXIT_USAGE, UsageError  # noqa: E402


def parse_args(argv):
    p = options.build_parser(description=__doc__.split("\n\n")[0], backend_names=backends.NAMES)
    args = p.parse_args(argv)

    args.given = options.given_options(argv)
    problem = options.run_mode_conflict(args.given)
    if problem:
        p.error(problem)
    try:
        args.backends = cli.parse_backends(args.backend, backends.NAMES, environments=True)
    except UsageError as exc:
        p.error(str(exc))
    try:
        args.seed_list = ([int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds
                          else [args.seed])
    except ValueError:
        p.error(f"--seeds takes comma-separated integers like 0,1,2, got {args.seeds!r}")
    if not args.seed_list or len(set(args.seed_list)) != len(args.seed_list):
        p.error(f"--seeds needs distinct integers like 0,1,2, got {args.seeds!r}")
    args.seed = args.seed_list[0]
    problem = cli.bounds_problem(args)  # each option's own bounds (its `check`)
    if problem:
        p.error(problem)
    try:
        replicas.check_batch(args.batch_size, args.devices * args.nodes)
    except ValueError as exc:
        p.error(str(exc).replace("--devices", "--devices x --nodes" if args.nodes > 1 else "--devices"))
    plain = [cli.split_label(b)[0] for b in args.backends]  # NAME@ENV runs NAME's engine
    plain = list(backends.NAMES) if plain == ["all"] else plain  # all@ENV: every engine
    if args.nodes > 1 and len(plain) > 1:  # every engine runs across hosts, one a run
        p.error(f"--nodes: one backend per multi-host run; pass one of --backend {', '.join(backends.NAMES)}")
    by_hostfile = args.nodes > 1 and backends.REGISTRY[plain[0]].multi_host == backends.HOSTFILE
    problem = (replicas.hostfile_problem(args.nodes, args.hostfile, args.node_rank, args.rdzv_endpoint)
               if by_hostfile or args.hostfile else replicas.hosts_problem(
                   args.nodes, args.node_rank, args.rdzv_endpoint,
                   all(backends.REGISTRY[b].assigns_ranks for b in plain)))
    if problem:
        p.error(problem)
    if args.checkpoint_every and args.devices * args.nodes > 1:
        p.error("--checkpoint-every with --devices/--nodes > 1 is not supported in this version "
                "(each replica would need its own checkpoint); drop one of them")
    if args.compile_mode != "default" and not args.compile:
        p.error(f"--compile-mode {args.compile_mode} applies to torch.compile: add --compile")
    if args.sync_bn and args.devices * args.nodes == 1:
        p.error("--sync-bn needs --devices 2 or more (one device already normalises the whole batch)")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # The harness is imported after parsing: --help and a bad option need none of it.
    from common.harness import interrupts, listing, orchestrate, reporting, resume
    if args.list:
        return listing.list_backends()
    try:
        if args.report:
            return reporting.rebuild_report(Path(args.report))
        if args.compare:
            return reporting.compare_runs(*(Path(d) for d in args.compare))
        if args.resume:
            args = resume.resume_args(args)
            if resume.nothing_left(args.stored_results):
                print(f"run_all.py: nothing to resume: every backend of {args.resume} finished "
                      f"(--report {args.resume} rebuilds its report)", file=sys.stderr)
                return 0
    except UsageError as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM (a scheduler, `timeout`) ends the run like Ctrl-C: children stopped, results kept;
    # a signal stops only the wait on a child (or the data loading), never the writing of results.
    if args.nodes > 1 and args.node_rank is not None:
        # the hosts meet first: the same options everywhere, every host there, else one line
        from common.harness import launch
        try:
            launch.meet(args.nodes, args.node_rank, args.rdzv_endpoint, options.host_settings(args),
                        args.host_timeout or launch.MEET_WAIT_S)
        except launch.MeetError as exc:
            print(f"run_all.py: error: {exc}", file=sys.stderr)
            return exc.exit_code
    interrupts.process.install()
    try:
        return orchestrate.run(args)
    except KeyboardInterrupt:
        print("run_all.py: interrupted before training started; nothing was written", file=sys.stderr)
        return orchestrate.EXIT_INTERRUPTED
    except (UsageError, DataError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        interrupts.process.restore()


if __name__ == "__main__":
    sys.exit(main())

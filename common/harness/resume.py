"""`run_all.py --resume DIR`: the stored run's configuration, and what a command line may add.

A resumed run continues with exactly the configuration its results.json records; a training
option given again on the command line must equal the stored value, or the resume is refused
naming it. Options that do not change what is computed (--quiet, --verbose, --timeout) may differ.
Which option is which is each option's `resume` metadata in common/options.py; a CHANGEABLE
one (--checkpoint-every) keeps its stored value unless the command line gives a new one.
"""
from __future__ import annotations

from pathlib import Path

import backends
from common import options
from common.harness.runfolder import load_run
from common.options import CHANGEABLE, COMPARE, EXCLUSIVE, FREE, UsageError


def conflicts(args, given: set[str], config: dict) -> str | None:
    """The first option on the command line that the resumed run cannot honour, said in one
    line, or None."""
    if (config.get("nodes") or 1) > 1:
        return "a multi-host run (--nodes) cannot be resumed in this version; start a new run"
    for dest in sorted(given):
        mode, flag = options.resume_mode(dest), options.flag(dest)
        if mode in (FREE, CHANGEABLE):
            continue
        if mode == EXCLUSIVE:
            return f"{flag} cannot be combined with --resume (the run folder keeps its own)"
        if mode != COMPARE:
            return f"{flag} cannot be combined with --resume"
        try:
            stored = options.stored_value(dest, config)
        except (KeyError, TypeError):
            return f"the stored configuration has no valid {flag}; this run cannot be resumed"
        value = getattr(args, options.options()[dest].attr or dest)
        if value != stored:
            return (f"{flag} {value!r} differs from the run's stored {stored!r}; "
                    "--resume continues with the stored configuration (drop the option or start "
                    "a new run)")
    return None


def apply(args, config: dict, dataset: dict) -> None:
    """Set args to the stored configuration (the data as resolved then: an offline fallback
    stays the fallback, a cache stays that cache). KeyError/TypeError if it is incomplete."""
    given = getattr(args, "given", set())
    for name, opt in options.options().items():
        if options.resume_mode(name) == CHANGEABLE and name in given:
            continue  # the command line's new value
        if options.resume_mode(name) in (COMPARE, CHANGEABLE):
            value = options.stored_value(name, config)
            setattr(args, opt.attr or name, list(value) if isinstance(value, list) else value)
        elif options.resume_mode(name) == EXCLUSIVE:  # not given (conflicts refused it)
            setattr(args, name, getattr(options.DEFAULTS, name))
    args.seeds = ",".join(map(str, args.seed_list)) if "seeds" in config else None
    args.dataset = dataset["name"]
    source = dataset.get("source") if isinstance(dataset.get("source"), dict) else {}
    args.data_dir = source.get("data_dir") or source.get("cache_dir")


def resume_args(args):
    """--resume DIR: args become DIR's stored configuration; refused (UsageError) if DIR is not
    a run folder, was written by a newer dcgan-bench, or the command line asks for other values."""
    run_dir = Path(args.resume)
    results = load_run(run_dir)
    problem = conflicts(args, args.given, results.get("config") or {})
    if problem:
        raise UsageError(problem)
    try:
        apply(args, results["config"], results["dataset"])
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{run_dir / 'results.json'}: no usable stored configuration "
                         f"({type(exc).__name__}: {exc}); this run cannot be resumed") from None
    if args.checkpoint_every and args.devices * args.nodes > 1:
        raise UsageError("--checkpoint-every with a data-parallel run (--devices/--nodes > 1) is not "
                         "supported in this version; resume without it")
    # As the run was started: 'all' or named backends (a named one that is skipped is an error).
    args.backend = "all" if args.backends == list(backends.NAMES) else ",".join(args.backends)
    args.stored_results = results
    return args


def nothing_left(results: dict) -> bool:
    """Every backend of every seed finished (ok or skipped): --resume has nothing to do."""
    runs = [results.get("backends") or {}, *(results.get("by_seed") or {}).values()]
    return bool(runs[0]) and all(r.get("status") in ("ok", "skipped") for run in runs for r in run.values())

"""`run_all.py --resume DIR`: the stored run's configuration, and what a command line may add.

A resumed run continues with exactly the configuration its results.json records; a training
option given again on the command line must equal the stored value, or the resume is refused
naming it. Options that do not change what is computed (--quiet, --verbose, --timeout) may differ.
"""
from __future__ import annotations

# argparse dest -> how to read the stored value from results.json's "config"
_STORED = {
    "backend": lambda c: c["backends"],
    "dataset": lambda c: c["dataset"],
    "preset": lambda c: c["preset"],
    "iters": lambda c: c["iters"],
    "batch_size": lambda c: c["batch_size"],
    "seed": lambda c: c["seed"],
    "seeds": lambda c: c.get("seeds", [c["seed"]]),
    "shared_init": lambda c: c["shared_init"],
    "device": lambda c: c["device"],
    "threads": lambda c: c["threads"],
    "channels_last": lambda c: c["channels_last"],
    "bf16": lambda c: c["bf16"],
    "xla": lambda c: c["xla"],
    "compile": lambda c: c.get("compile", False),
    "devices": lambda c: c.get("devices", 1),
    "sync_bn": lambda c: c.get("sync_bn", False),
    "quality_every": lambda c: (c.get("quality") or {}).get("every", 0),
    "checkpoint_every": lambda c: c.get("checkpoint_every"),
}
FREE = {"resume", "quiet", "verbose", "timeout"}
# Not combinable with --resume at all: the run folder and its data are the stored ones.
EXCLUSIVE = {"out": "--out", "data_dir": "--data-dir", "epochs": "--epochs", "report": "--report",
             "compare": "--compare", "list": "--list"}


def _given_value(args, dest: str):
    if dest == "backend":
        return args.backends
    if dest == "seeds":
        return args.seed_list
    if dest == "seed":
        return args.seed_list[0]
    return getattr(args, dest)


def conflicts(args, given: set[str], config: dict) -> str | None:
    """The first option on the command line that the resumed run cannot honour, said in one
    line, or None."""
    if (config.get("nodes") or 1) > 1:
        return "a multi-host run (--nodes) cannot be resumed in this version; start a new run"
    for dest in sorted(given - FREE):
        flag = "--" + dest.replace("_", "-")
        if dest in EXCLUSIVE:
            return f"{EXCLUSIVE[dest]} cannot be combined with --resume (the run folder keeps its own)"
        if dest not in _STORED:
            return f"{flag} cannot be combined with --resume"
        try:
            stored = _STORED[dest](config)
        except (KeyError, TypeError):
            return f"the stored configuration has no valid {flag}; this run cannot be resumed"
        if _given_value(args, dest) != stored:
            return (f"{flag} {_given_value(args, dest)!r} differs from the run's stored {stored!r}; "
                    "--resume continues with the stored configuration (drop the option or start "
                    "a new run)")
    return None


def apply(args, config: dict, dataset: dict) -> None:
    """Set args to the stored configuration (the data as resolved then: an offline fallback
    stays the fallback, a cache stays that cache)."""
    args.backends = list(config["backends"])
    args.seed_list = list(config.get("seeds", [config["seed"]]))
    args.seed = args.seed_list[0]
    for dest in ("preset", "iters", "batch_size", "shared_init", "device", "threads",
                 "channels_last", "bf16", "xla"):
        setattr(args, dest, config[dest])
    args.seeds = ",".join(map(str, args.seed_list)) if "seeds" in config else None
    args.quality_every = (config.get("quality") or {}).get("every", 0)
    args.checkpoint_every = config.get("checkpoint_every")
    # options added after schema 1's first runs: absent means their defaults
    args.compile = config.get("compile", False)
    args.devices, args.sync_bn = config.get("devices", 1), config.get("sync_bn", False)
    args.epochs = None
    args.dataset = dataset["name"]
    source = dataset.get("source") if isinstance(dataset.get("source"), dict) else {}
    args.data_dir = source.get("data_dir") or source.get("cache_dir")

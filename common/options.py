"""Every option of run_all.py, defined once: `RunOptions` below.

Each field is one command-line option: its type, default and help, and in its metadata where
it goes. Everything else is derived from these fields, never restated:
- the argparse parser (`build_parser`) and which options a command line gave (`given_options`);
- the configuration stored in results.json (`stored_config`; schema version 1: same keys);
- the child process's config (`child_settings`, `backend_settings`);
- `BackendOptions`, the backend-facing subset (`backend=True`), what a backend is built with;
- what `--resume` compares, ignores or refuses (common/harness/resume.py reads `Option.resume`).

Adding an option is one field here with its help text; its metadata says whether it is stored,
handed to the child or to the backend, and what --resume does with it. A training option a
backend reads, for example:

    foo: int = option(0, "what --foo does", SPEED, check="positive", stored=True, late=True,
                      backend=True)

gives `--foo N` (help, default, bound), results.json's config["foo"], resume's comparison
(absent from older results.json: 0), the child's options["foo"] and `BackendOptions.foo`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from common.spec import PRESETS

DEFAULT_ITERS = 500
DEFAULT_BATCH = 64
EXIT_USAGE = 2

# What --resume does with an option given again on its command line:
COMPARE = "compare"      # must equal the stored value (it changes what is computed)
FREE = "free"            # may differ: it changes nothing computed (--quiet, --timeout)
EXCLUSIVE = "exclusive"  # never with --resume: the run folder keeps its own (--out, --data-dir)
REFUSED = "refused"      # not stored, so it cannot be checked: refused with --resume
CHANGEABLE = "changeable"  # stored, and a resume may change it: it changes nothing computed
COMPILE_MODES = ("default", "max-autotune")  # --compile-mode's ("default": torch.compile's mode=None)

AS_CLI = object()  # BackendOptions' default is the command line's


class UsageError(Exception):
    """Bad input: one line naming the fix, exit status 2 (EXIT_USAGE)."""


@dataclass(frozen=True)
class Option:
    """Where one RunOptions field goes besides argparse."""
    help: str
    group: str
    choices: tuple | None = None
    metavar: str | tuple | None = None
    nargs: int | None = None
    exclusive: str | None = None     # argparse mutually exclusive group of that name
    check: str | None = None         # "positive": > 0 when given; "non_negative": 0 (off) or > 0
    attr: str | None = None          # the parsed-args attribute holding the resolved value
    stored: bool = False             # written into results.json's "config" under `key`
    key: str | None = None           # its key there (default: the field's name)
    stored_when: Callable[[Any], bool] | None = None  # written only when this holds
    late: bool = False               # added after schema 1's first runs (so every new stored
    #                                  option): absent from a results.json means the default
    read: Callable[[dict], Any] | None = None  # how resume reads it, if not config[key]
    resume: str | None = None        # COMPARE, FREE, EXCLUSIVE or REFUSED (default: stored or
    #                                  read -> COMPARE, else REFUSED)
    child: bool = False              # a top-level entry of the child's config
    backend: bool = False            # a field of BackendOptions (the child's "options")
    backend_default: Any = AS_CLI  # BackendOptions' default, where not the CLI's


def option(default, help: str, group: str, **meta) -> Any:
    """A RunOptions field: its default, its --help text ("" for none), its --help group, and
    Option metadata."""
    return field(default=default, metadata={"option": Option(help=help, group=group, **meta)})


# The --help groups, in this order.
DATA, TRAIN, SPEED, PARALLEL, QUALITY, OUTPUT, OTHER = (
    "data", "training", "device, threads and fast paths (off by default: parity is proven "
    "without them)", "data parallel", "sample quality", "output", "run modes (without "
    "training, or continuing a run; each alone)")
GROUPS = (DATA, TRAIN, SPEED, PARALLEL, QUALITY, OUTPUT, OTHER)
# --help's closing lines: the commands a new user needs first.
EXAMPLES = """examples:
  python run_all.py --backend all@newest --dataset mnist     the main job (docs/environments.md)
  python run_all.py --backend pytorch --iters 40 --quiet     one backend, a quick check
  python run_all.py --dataset synthetic --device gpu --batch-size 256
  python run_all.py --checkpoint-every 100 --out runs/long   resumable: --resume runs/long
  python run_all.py --compare runs/a runs/b                  what changed, beyond noise or not
  python run_all.py --list                                   installed backends and devices
docs: README.md, docs/options.md, docs/outputs.md (what a run writes), docs/benchmarks.md"""


@dataclass(frozen=True)
class RunOptions:
    backend: str = option(
        "all", "'all' or a comma-separated list of: {backend_names}; run_all.py takes NAME@ENV too, "
        "ENV an environment tools.envs built or a Python's absolute path (jax,jax@newest), and "
        "all@ENV: each backend in ENV where ENV holds it (default all)",
        TRAIN, metavar="LIST", attr="backends", stored=True, key="backends")
    dataset: str = option(
        "mnist", "mnist | mnist-5k | synthetic | cifar10 | PATH (a folder of .png/.jpg images; default mnist)",
        DATA, metavar="NAME|PATH", stored=True)
    preset: str | None = option(
        None, "network preset (default: the dataset's: mnist32 for digits, dcgan64 for RGB)",
        DATA, choices=tuple(PRESETS),
        stored=True, child=True)
    iters: int | None = option(
        None, f"training iterations (default {DEFAULT_ITERS}, or --epochs)", TRAIN,
        exclusive="length", metavar="N",
        check="positive", stored=True, child=True)
    epochs: float | None = option(
        None, "training length in epochs of the dataset, instead of --iters (default: off)",
        TRAIN, exclusive="length", metavar="E",
        check="positive", resume=EXCLUSIVE)
    batch_size: int = option(DEFAULT_BATCH, f"images per training step, all replicas together "
                                            f"(default {DEFAULT_BATCH})", TRAIN, check="positive", metavar="N",
                             stored=True, child=True)
    # the framework's RNG, used for its own init under --no-shared-init
    seed: int = option(0, "the one training seed: initial weights, noise and data order "
                          "(default 0; several: --seeds)", TRAIN, metavar="N", stored=True, backend=True)
    seeds: str | None = option(
        None, "comma-separated training seeds (e.g. 0,1,2): every backend trains once per seed "
              "and the report gives mean and spread (default: off, --seed alone)", TRAIN, metavar="LIST",
        attr="seed_list", stored=True, stored_when=lambda seeds: len(seeds) > 1,
        read=lambda c: c.get("seeds", [c["seed"]]))
    shared_init: bool = option(
        True, "every backend starts from the same numpy-drawn weights (default: on)", TRAIN,
        stored=True)
    data_dir: str | None = option(
        None, "folder with the MNIST .gz (or raw idx) files or the CIFAR-10 python tarball; "
              "no download (default: the cache, downloading what is missing)", DATA,
        metavar="DIR", resume=EXCLUSIVE)
    # gpu never falls back to the CPU silently
    device: str = option("auto", "where every backend trains: auto (a GPU if one is visible), "
                                 "cpu or gpu (never falls back); not --devices (default auto)",
                         SPEED, choices=("auto", "cpu", "gpu"), stored=True, backend=True)
    # None (BackendOptions' default) keeps the framework's own
    threads: int = option(
        os.cpu_count(), "CPU threads given to every framework alike (default: all cores)", SPEED,
        check="positive", metavar="N",
        stored=True, backend=True, backend_default=None)
    # Fast paths, off by default: parity is proven without them.
    channels_last: bool = option(False, "channels-last memory layout (PyTorch; default off)", SPEED,
                                 stored=True, backend=True)
    bf16: bool = option(
        False, "bf16 math (PyTorch autocast, Keras mixed_bfloat16; MXNet's AMP graph, an "
        "ablation: slower on CPUs; default off)", SPEED,
        stored=True, backend=True)
    xla: bool = option(False, "XLA-compiled step (TensorFlow; default off)", SPEED,
                       stored=True, backend=True)
    onednn: bool = option(
        False, "XLA:CPU's classic runtime, whose convolutions run in oneDNN, and the stride-2 "
               "transposed convolutions as stride-1 phases that oneDNN takes (JAX on a CPU; "
               "jaxlib 0.6 has the runtime, newer ones ignore it; default off)", SPEED,
        stored=True, stored_when=bool, late=True, backend=True)
    compile: bool = option(False, "torch.compile'd G and D (PyTorch; default off)", SPEED,
                           stored=True, late=True, backend=True)
    # Stored only when not the default, so a run without it stores what it stored before.
    compile_mode: str = option(
        "default", "with --compile: torch.compile's mode; max-autotune: Inductor autotunes "
                   "every kernel and, on CUDA, captures CUDA graphs, compiling for minutes "
                   "(default: torch.compile's own)", SPEED, choices=COMPILE_MODES,
        stored=True, stored_when=lambda mode: mode != "default", late=True, backend=True)
    devices: int = option(
        1, "number of data-parallel replicas (not --device), each with its framework's own "
           "engine (docs/data-parallel.md); each trains on 1/N of every batch (default 1)", PARALLEL,
        check="positive", metavar="N", stored=True, late=True, backend=True)
    sync_bn: bool = option(
        False, "with --devices: BN over the global batch (PyTorch SyncBatchNorm, CUDA only; "
               "Chainer MultiNodeBatchNormalization; default off: per-replica BN)", PARALLEL,
        stored=True, late=True, backend=True)
    # A multi-host run is not resumable in this version (resume refuses it), so never compared.
    nodes: int = option(
        1, "hosts of one data-parallel run: PyTorch (torchrun), JAX (jax.distributed) and MXNet "
           "(dist_sync kvstore) run run_all.py with the same arguments on each, but --node-rank "
           "and --out; Chainer (mpiexec) once, with --hostfile; --devices replicas a host (default 1)", PARALLEL,
        check="positive", metavar="N", stored=True, resume=REFUSED, child=True, backend=True)
    rdzv_endpoint: str | None = option(
        None, "with --nodes: where the hosts meet (one of them, a free port; no default)", PARALLEL,
        metavar="HOST:PORT", child=True, backend=True)
    # Not stored: each host's own; the hosts' other options are compared at the start instead.
    # The backend reads these three (common/harness/checkpoint.py hashes them only when set).
    node_rank: int | None = option(
        None, "with --nodes: this host's rank, 0 .. nodes-1; node 0 hosts the endpoint (no "
              "default: required but for PyTorch, whose rendezvous assigns ranks; checked when "
              "given)", PARALLEL, metavar="R", backend=True)
    # One command for every host (Chainer: mpiexec starts them all): a top-level child entry,
    # hashed into checkpoints only when set (common/harness/checkpoint.py).
    hostfile: str | None = option(
        None, "with --nodes, Chainer: MPI's host file (one host a line; MPICH's host:slots "
              "form too); run_all.py runs once, on the first host, which reaches the others by "
              "ssh (no default)", PARALLEL, metavar="FILE", child=True)
    host_timeout: float | None = option(
        None, "with --nodes: seconds without word from a host before the others end failed, "
              "naming it (default: the engine's, docs/data-parallel.md)", PARALLEL,
        check="positive", metavar="SECONDS", backend=True)
    out: str | None = option(None, "run folder to create, must not exist (default: a new "
                                   "runs/<timestamp>)", OUTPUT, metavar="DIR",
                             resume=EXCLUSIVE)
    timeout: float | None = option(
        None, "seconds one backend may take before it is stopped (default: no limit)", TRAIN,
        check="positive", metavar="SECONDS",
        stored=True, resume=FREE)
    quiet: bool = option(False, "no progress bars (default: shown)", OUTPUT, resume=FREE,
                         child=True)
    figures: bool = option(True, "draw the report's figures (default: on; --no-figures writes "
                                 "results.json, losses.csv and report.md only, as benchmark cells "
                                 "do; --report DIR draws them later)", OUTPUT, resume=FREE)
    verbose: bool = option(False, "show the frameworks' own log output (default: hidden)", OUTPUT,
                           resume=FREE, backend=True)
    # Stored inside the run's quality configuration ("quality": {"every": K}), which the run
    # resolves; resume reads it from there.
    quality_every: int | None = option(
        None, "FD of the fixed-z samples every K iterations, for the time-to-quality curve "
              "(default: about 10 points per run: the iterations / 10 rounded to a multiple of "
              "10, at least 10; 0: off)", QUALITY, metavar="K",
        check="non_negative", read=lambda c: (c.get("quality") or {}).get("every", 0))
    # Stored there too ("quality": {"target_fd": F}), only when given.
    target_fd: float | None = option(
        None, "train each backend until its fixed-z FD is at most F, checked every "
              "--quality-every K iterations and at the last, or until the iterations run out; "
              "results.json records each backend's time to target in training seconds, the "
              "checks excluded; digits only (default: off)", QUALITY, metavar="F",
        check="positive", read=lambda c: (c.get("quality") or {}).get("target_fd"))
    checkpoint_every: int | None = option(
        None, "write each backend's checkpoint (native state + canonical weights) every N "
              "iterations into backends/<name>/checkpoints/, for --resume (default: none)",
        OUTPUT, metavar="N",
        check="positive", stored=True, stored_when=bool, late=True, child=True, resume=CHANGEABLE)
    resume: str | None = option(
        None, "continue the unfinished backends of run DIR from their last checkpoints, with "
              "DIR's stored configuration", OTHER, metavar="DIR", resume=FREE)
    list: bool = option(False, "show the backends, whether installed, versions and devices", OTHER,
                        resume=EXCLUSIVE)
    report: str | None = option(None, "rebuild DIR's report from its results.json; no training",
                                OTHER, metavar="DIR", resume=EXCLUSIVE)
    compare: tuple | None = option(
        None, "print what changed from run DIR_A to run DIR_B (speed, beyond noise or not; "
              "losses, quality)", OTHER,
        nargs=2, metavar=("DIR_A", "DIR_B"), resume=EXCLUSIVE)


def options() -> dict[str, Option]:
    """Every option by its argparse dest, in the order of --help."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(RunOptions)}


DEFAULTS = RunOptions()
_TYPES = typing.get_type_hints(RunOptions)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_mode(name: str) -> str:
    opt = options()[name]
    return opt.resume or (COMPARE if opt.stored or opt.read else REFUSED)


def stored_value(name: str, config: dict):
    """Option `name`'s value as results.json's "config" records it (KeyError/TypeError if it
    does not)."""
    opt = options()[name]
    if opt.read:
        return opt.read(config)
    key = opt.key or name
    return config.get(key, getattr(DEFAULTS, name)) if opt.late else config[key]


# ----- argparse -----
class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def argparse_kwargs(name: str, opt: Option, suppress: bool, backend_names) -> dict:
    kind = _TYPES[name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None: X
        kind = typing.get_args(kind)[0]
    kwargs = {"default": argparse.SUPPRESS if suppress else getattr(DEFAULTS, name)}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction if getattr(DEFAULTS, name) \
            else "store_true"
    elif kind in (int, float):
        kwargs["type"] = kind
    if opt.help:  # the registry's names, handed in by the command line (common/ is below backends/)
        kwargs["help"] = opt.help.replace("{backend_names}", ", ".join(backend_names) or "the backend names")
    for meta in ("choices", "metavar", "nargs"):
        if getattr(opt, meta) is not None:
            kwargs[meta] = getattr(opt, meta)
    return kwargs


def build_parser(description: str = "", suppress: bool = False,
                 backend_names: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """run_all.py's parser. suppress: no defaults at all, so a parse lists only what was given.
    backend_names: the registry's (backends.NAMES), named in --backend's help."""
    p = OneLineParser(prog="run_all.py", description=description, epilog=EXAMPLES,
                      usage="%(prog)s [options]   (grouped below; examples at the end)",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    # argparse groups by title (in GROUPS' order), then mutually exclusive ones by name
    groups: dict[str, Any] = {title: p.add_argument_group(title) for title in GROUPS}
    for name, opt in options().items():
        if opt.group not in groups:
            groups[opt.group] = p.add_argument_group(opt.group)
        group = groups[opt.group]
        if opt.exclusive:
            if opt.exclusive not in groups:
                groups[opt.exclusive] = group.add_mutually_exclusive_group()
            group = groups[opt.exclusive]
        group.add_argument(flag(name), **argparse_kwargs(name, opt, suppress, backend_names))
    return p


def given_options(argv) -> set[str]:
    """The dests set on the command line (abbreviations included): parsed again with no
    defaults, so only what was given is set."""
    return set(vars(build_parser(suppress=True).parse_args(argv)))


RUN_MODES = ("list", "report", "compare", "resume")
MODE_EXTRAS = {"quiet", "verbose"}  # what a mode without training still accepts


def run_mode_conflict(given: set[str]) -> str | None:
    """One line if the command line mixes run modes, or gives --list/--report/--compare an
    option that only training reads (--resume's own checks are in common/harness/resume.py)."""
    modes = [m for m in RUN_MODES if m in given]
    if len(modes) > 1:
        return f"{' and '.join(map(flag, modes))} cannot be combined; run one at a time"
    if modes and modes[0] != "resume":
        extra = sorted(given - {modes[0]} - MODE_EXTRAS)
        if extra:
            return (f"{flag(modes[0])} trains nothing, so {', '.join(map(flag, extra))} "
                    f"{'does' if len(extra) == 1 else 'do'} not apply; drop "
                    f"{'it' if len(extra) == 1 else 'them'}")
    return None


# ----- what is derived from parsed (and resolved) args -----
def _value(args, name: str, resolved: dict):
    attr = options()[name].attr or name
    return resolved[attr] if attr in resolved else getattr(args, attr)


def stored_config(args, **resolved) -> dict:
    """results.json's "config" entries that are options (the quality config is added by the
    run). resolved: values the run resolved (preset, iters) in place of the parsed ones."""
    config = {}
    for name, opt in options().items():
        if opt.stored:
            value = _value(args, name, resolved)
            if opt.stored_when is None or opt.stored_when(value):
                config[opt.key or name] = value
    return config


def child_settings(args, **resolved) -> dict:
    """The options the child's config carries at its top level."""
    return {name: _value(args, name, resolved) for name, opt in options().items() if opt.child}


# Options a host may set for itself in a multi-host run (its machine's threads); every other
# option that changes what is computed must be the same on every host.
PER_HOST = {"threads"}


def host_settings(args) -> dict:
    """What the hosts of a multi-host run compare before training (common/harness/launch.py's
    meet): the options --resume compares but PER_HOST, and the host count."""
    names = [n for n in options() if resume_mode(n) == COMPARE and n not in PER_HOST]
    return {**{n: getattr(args, options()[n].attr or n, None) for n in names},
            "nodes": args.nodes, "host_timeout": args.host_timeout}


def backend_settings(args) -> dict:
    """The child's "options": BackendOptions' fields as the command line set them."""
    return {name: getattr(args, name) for name, opt in options().items() if opt.backend}


BackendOptions = dataclasses.make_dataclass(
    "BackendOptions",
    [(name, _TYPES[name] if opt.backend_default is AS_CLI else _TYPES[name] | None,
      field(default=getattr(DEFAULTS, name) if opt.backend_default is AS_CLI
            else opt.backend_default))
     for name, opt in options().items() if opt.backend],
    frozen=True)
BackendOptions.__module__ = __name__  # make_dataclass's own `module=` is Python 3.12+
BackendOptions.__doc__ = (
    "What a backend is built with: the RunOptions fields marked backend=True (see their "
    "comments there), with their command-line defaults except threads=None (the framework's "
    "own). data parallel: devices replicas on each of nodes hosts, sync_bn for BN over the "
    "global batch.")

"""A version table: one backend at several releases of its framework, each in an environment of
its own, checked against the float64 oracle and timed in interleaved, paired repeats.

    python -m benchmarks.versions --backend tensorflow --versions 2.19,2.20,2.21
    python -m benchmarks.versions --backend jax --versions 0.6.2,0.10.2,0.12.1 --python 3.12
    python -m benchmarks.versions --backend chainer --envs /abs/a/bin/python,/abs/b/bin/python

Each release gets an environment (tools.envs, from a requirement file written under OUT: the
framework pinned, its companions as pip resolves them: Keras for TensorFlow; jaxlib, Flax, Optax
and numpy for JAX) unless one with the same requirements is built. In each, the backend's parity
tests run (forward, gradients, optimizer, one iteration, weight transfer against the float64
oracle; --no-parity skips them), recording every comparison's difference (OUT/parity/, by
common/results/parity_record.py), so the table gives each release's largest difference per kind
of check beside its tolerance, not only the pass; then every repeat runs one `run_all.py
--dataset synthetic` with every release's label in rotated order, so the releases of one repeat
share the machine's state. The reference is the newest release (with --envs, the first environment). A release's
change is 'beyond noise' only when its repeats' img/s range and the reference's do not overlap
and the medians differ by more than either range (relative): the spread measured in this very
table. Writes OUT/versions.json (one row per release) and OUT/versions.md; the run folders stay
in OUT/runs (ignored by git under benchmarks/results/versions/), and --redraw rewrites
versions.md from them and versions.json, given the original arguments.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from benchmarks import configs  # noqa: E402
from common import atomic, cli, interpreters  # noqa: E402
from common.harness import environment  # noqa: E402
from common.options import EXIT_USAGE, UsageError  # noqa: E402
from common.results import parity_record, schema, tables  # noqa: E402
from common.results.markdown import machine_line  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results" / "versions"
# The pip requirements of one release: the framework pinned, its companions left to pip.
RELEASE = {
    "tensorflow": ("tensorflow-cpu", lambda v: [f"tensorflow-cpu=={v}"]),
    "jax": ("jax", lambda v: [f"jax=={v}", f"jaxlib=={v}", "flax", "optax"]),
    "chainer": ("chainer", lambda v: [f"chainer=={v}", "setuptools<81", "six"]),
    "mxnet": ("mxnet", lambda v: [f"mxnet=={v}", "numpy<2"]),
}
# PyTorch's CPU builds of other releases are on download.pytorch.org/whl/cpu (not reachable
# here); PyPI's Linux wheels are CUDA builds of several GB each.
NO_RELEASES = {"pytorch": "PyTorch releases need its CPU wheel index (pip --index-url "
                          "https://download.pytorch.org/whl/cpu), which this tool does not use; "
                          "compare two PyTorch environments with --envs instead"}
BASE = ["pandas", "tabulate", "matplotlib", "pillow", "tqdm", "mlxtend", "pytest", "hypothesis", "scipy"]
PARITY_TESTS = ("tests/backends/test_backend_parity.py", "tests/backends/test_optimizer.py",
                "tests/backends/test_weight_transfer.py")


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.versions", __doc__)
    p.add_argument("--backend", required=True, choices=backends.NAMES, help="the one backend compared")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--versions", metavar="LIST", help="comma-separated releases of its framework")
    given.add_argument("--envs", metavar="LIST", help="comma-separated environments instead "
                       "(built names or Python interpreters' absolute paths); the first is the reference")
    p.add_argument("--python", default=None, metavar="X.Y",
                   help="the Python of each release's environment (default 3.12; 3.11 for mxnet)")
    p.add_argument("--wheels", metavar="DIR", help="build the environments offline from this wheel folder")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    p.add_argument("--iters", type=int, default=60, help="iterations per run (default 60)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--preset", default="mnist32", choices=("mnist32", "dcgan64"), help="(default mnist32)")
    p.add_argument("--configs", default="spec,best", metavar="LIST",
                   help="spec and/or best (benchmarks/configs.py: the backend's CPU fast paths), "
                        "each its own table; a backend without a best runs spec only (default spec,best)")
    p.add_argument("--no-parity", action="store_true", help="skip the parity tests")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results/versions/<backend>)")
    p.add_argument("--redraw", action="store_true",
                   help="rewrite OUT/versions.md from OUT/versions.json and OUT/runs, building and "
                        "running nothing (give the arguments the table was made with)")
    args = p.parse_args(argv)
    if args.repeats < 2 or args.iters < 10:
        p.error("--repeats 2 or more and --iters 10 or more: the noise rule needs a spread")
    if args.versions and args.backend in NO_RELEASES:
        p.error(NO_RELEASES[args.backend])
    args.out = args.out or RESULTS_DIR / args.backend
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not args.config_list or set(args.config_list) - {"spec", "best"}:
        p.error(f"--configs takes spec, best or spec,best, got {args.configs!r}")
    return args


def version_key(text: str) -> list:
    return [int(x) if x.isdigit() else x for x in re.split(r"[.+-]", text)]


def release_envs(args) -> list[str]:
    """One built environment per release (built here if missing), newest last; exit 2 on a
    release pip cannot find."""
    package, requirements = RELEASE[args.backend]
    python = args.python or ("3.11" if args.backend == "mxnet" else "3.12")
    names = []
    for version in sorted({v.strip() for v in args.versions.split(",") if v.strip()}, key=version_key):
        name = f"{args.backend}-{version}"
        text = "\n".join([f"# {name}: {package} {version} and its companions", f"# python: {python}",
                          *requirements(version), *BASE]) + "\n"
        path = args.out / "requirements" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, text)
        record = interpreters.envs_dir() / name / interpreters.RECORD
        if not (record.exists() and json.loads(record.read_text()).get("requirements") == str(path)):
            command = [sys.executable, "-m", "tools.envs", "create", name, "--file", str(path), "--force"]
            if args.wheels:
                command += ["--wheels", str(args.wheels)]
            print(f"benchmarks.versions: building {name} (python -m tools.envs create)", flush=True)
            built = subprocess.run(command, cwd=REPO, check=False, capture_output=True, text=True)
            if built.returncode != 0:
                errors = [line for line in built.stderr.splitlines() if line.startswith("ERROR:")]
                raise UsageError(f"{package}=={version}: its environment did not build "
                                 f"({(errors or ['see python -m tools.envs create'])[-1]}); "
                                 f"list the releases: pip index versions {package}")
        names.append(name)
    return names


def run_parity(backend: str, python: str, record: Path) -> dict:
    """The backend's parity tests in `python`: passed or not, how many, and per kind of check
    the largest difference from the float64 oracle for its tolerance ("checks"), from the
    comparisons the tests record into `record` (common/results/parity_record.py)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # the tests append: one run's comparisons only
    proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PARITY_TESTS,
                           f"tests/backends/test_{backend}.py", "-k", backend], cwd=REPO,
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, **{parity_record.RECORD_ENV: str(record)}))
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}
    return {"pass": proc.returncode == 0, "counts": counts, "summary": last.strip("= "),
            "checks": parity_record.summarise(parity_record.read(record))}


def repeat_runs(args, labels: list[str], config: str, paths: tuple[str, ...]) -> list[dict]:
    """Every repeat: one run_all.py with every label, in an order rotated by one each repeat."""
    runs = []
    for k in range(args.repeats):
        order = labels[k % len(labels):] + labels[:k % len(labels)]
        out = args.out / "runs" / config / f"repeat-{k}"
        command = cli.run_all_command(backend=order, iters=args.iters, batch_size=args.batch_size,
                                      preset=args.preset, dataset="synthetic", quiet=True,
                                      figures=False, out=str(out), device="cpu") + configs.flags(paths)
        if subprocess.run(command, cwd=REPO, check=False).returncode not in (0, 1):
            raise UsageError(f"repeat {k}: run_all.py stopped (above); its folder {out} keeps what it wrote")
        runs.append(json.loads((out / "results.json").read_text())["backends"])
    return runs


def verdict(mine: list[float], reference: list[float]) -> str:
    """'beyond noise' when the two sets of repeats' img/s do not overlap and the medians differ
    by more than either set's range (relative to its median); else 'within noise'."""
    if len(mine) < 2 or len(reference) < 2:
        return ""
    disjoint = max(mine) < min(reference) or max(reference) < min(mine)
    ma, mb = statistics.median(mine), statistics.median(reference)
    spread = max((max(mine) - min(mine)) / ma, (max(reference) - min(reference)) / mb)
    return "beyond noise" if disjoint and abs(ma - mb) / min(ma, mb) > spread else "within noise"


def table_rows(args, labels, runs, parity, config: str) -> list[dict]:
    package = RELEASE.get(args.backend, (backends.REGISTRY[args.backend].framework,))[0]
    rows = []
    for label in labels:
        got = [r.get(label, {}) for r in runs]
        ips = [(g.get("summary") or {}).get("img_per_s_median") for g in got]
        ips = [x for x in ips if x]
        packages = next(((g.get("environment") or {}).get("packages") for g in got if g.get("environment")), {})
        rows.append({"framework": args.backend, "label": label, "config": config,
                     "version": packages.get(package) or packages.get(backends.REGISTRY[args.backend].framework),
                     "packages": packages, "parity": parity.get(label),
                     "img_per_s": statistics.median(ips) if ips else None, "img_per_s_repeats": ips,
                     "statuses": [g.get("status") for g in got]})
    reference = rows[-1] if args.versions else rows[0]
    for row in rows:
        row["reference"] = reference["label"]
        row["change"] = (row["img_per_s"] / reference["img_per_s"] - 1
                         if row["img_per_s"] and reference["img_per_s"] else None)
        row["verdict"] = ("reference" if row is reference else
                          verdict(row["img_per_s_repeats"], reference["img_per_s_repeats"]))
    return rows


def parity_cell(p: dict | None) -> str:
    """The parity column: pass or FAIL, and the largest difference from the oracle for its
    tolerance (the kind of check closest to its bound), e.g. 'pass, max 3.1e-06 (tol 1e-05,
    forward); 40 passed'."""
    if p is None:
        return "-"
    verdict = "pass" if p["pass"] else "FAIL"
    counts = p.get("counts") or {k: p[k] for k in ("passed", "failed", "skipped", "error") if k in p}
    tests = ", ".join(f"{n} {k}" for k, n in counts.items()) or p.get("summary", "")
    tight = parity_record.tightest(p.get("checks") or {})
    if tight is None:
        return f"{verdict} ({tests}; no difference recorded)"
    kind, entry = tight
    return f"{verdict}, max {entry['max_rel']:.2g} (tol {entry['tolerance']:.2g}, {kind}); {tests}"


def parity_markdown(parity: dict[str, dict], versions: dict[str, str]) -> str:
    """Per release, each kind of check's largest difference from the float64 oracle over its
    tolerance (both relative to the compared values' scale, as the test holds them)."""
    kinds = list(dict.fromkeys(k for p in parity.values() for k in p.get("checks") or {}))
    if not kinds:
        return ""
    shown = [{"release": versions.get(label) or "?", "environment": label.partition("@")[2],
              **{k: (f"{c['max_rel']:.2g} / {c['tolerance']:.2g}" if (c := (p.get("checks") or {}).get(k))
                     else "-") for k in kinds}} for label, p in parity.items()]
    return ("## parity: largest difference / tolerance, per kind of check\n\n" + tables.table(shown, "github")
            + "\n\nEach cell: the comparison (of its kind, over the parity tests) that came closest to "
            "its bound, as max |got - oracle| over the compared values' scale, and the tolerance on "
            "it (tests/support/tolerances.py); the tests' record is under parity/.\n\n")


def markdown(rows) -> str:
    shown = [{"release": r["version"] or "?", "environment": r["label"].partition("@")[2],
              "parity": parity_cell(r["parity"]),
              "img/s": f"{r['img_per_s']:.1f}" if r["img_per_s"] else "-",
              "range": (f"{min(r['img_per_s_repeats']):.1f}-{max(r['img_per_s_repeats']):.1f}"
                        if r["img_per_s_repeats"] else "-"),
              "vs reference": "-" if r["change"] is None else f"{r['change'] * 100:+.1f}% ({r['verdict']})"}
             for r in rows]
    return (tables.table(shown, "github") + "\n\nimg/s: median over the interleaved repeats of each "
            "run's median (warm-up excluded); range: over the repeats. 'beyond noise': the repeats' "
            "ranges do not overlap and the medians differ by more than either range.\n")


def header(args, command: str, started: str | None, finished: str | None) -> str:
    """What the table measured and where: the command, the machine and code (from the first
    timed run's provenance), the cells and when it ran."""
    runs = [json.loads(path.read_text()) for path in sorted((args.out / "runs").glob("*/repeat-*/results.json"))]
    prov = runs[0].get("provenance") or {} if runs else {}
    if started and finished:
        when = f"; started {started}, finished {finished}"
    else:  # a table from before these were recorded: its timed runs' own times
        times = sorted(t for r in runs for t in (r.get("started"), r.get("finished")) if t)
        when = f"; timed runs from {times[0]} to {times[-1]}" if times else ""
    return "\n".join([
        f"Command: `{command}`", "",
        machine_line(prov),
        f"- Code: git {(prov.get('git') or {}).get('commit')}{when}",
        f"- Cells: preset {args.preset}, synthetic data, batch {args.batch_size}, {args.iters} "
        f"iterations a run, {args.repeats} interleaved repeats (every release in each, order "
        "rotated by one each repeat); each release's Python and packages are in versions.json",
        "", ""])


def write(args, rows: list[dict], text: str, command: str, started: str | None, finished: str | None) -> str:
    text = header(args, command, started, finished) + text
    atomic.write_json(args.out / "versions.json", {
        "backend": args.backend, "preset": args.preset, "batch_size": args.batch_size, "iters": args.iters,
        "repeats": args.repeats, "device": "cpu", "command": command, "started": started,
        "finished": finished, "rows": rows})
    atomic.write_text(args.out / "versions.md", text)
    return text


def redraw(args, command: str) -> int:
    """versions.md again from OUT/versions.json (its rows) and the runs' provenance."""
    try:
        doc = json.loads((args.out / "versions.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"benchmarks.versions: error: --redraw needs {args.out / 'versions.json'} ({exc}); "
              "run the table first", file=sys.stderr)
        return EXIT_USAGE
    rows, text, parity = doc["rows"], "", {}
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        parity.update({r["label"]: r["parity"] for r in mine if r.get("parity")})
        text += f"## {config}: {configs.label(configs.fast_paths(config, args.backend, 'cpu'))}\n\n{markdown(mine)}\n"
    text += parity_markdown(parity, {r["label"]: r["version"] for r in rows})
    print(write(args, rows, text, doc.get("command") or command, doc.get("started"), doc.get("finished")))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = "python -m benchmarks.versions " + " ".join(a for a in argv if a != "--redraw")
    if args.redraw:
        return redraw(args, command)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        if (args.out / "runs").exists():
            raise UsageError(f"{args.out / 'runs'} exists (runs are never overwritten); choose a new --out")
        envs = release_envs(args) if args.versions else [e.strip() for e in args.envs.split(",") if e.strip()]
        labels = cli.parse_backends(",".join(f"{args.backend}@{e}" for e in envs), backends.NAMES,
                                    environments=True)
        checked = environment.check(labels)  # every environment runs the backend, or exit 2
    except UsageError as exc:
        print(f"benchmarks.versions: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parity = ({} if args.no_parity else
              {label: run_parity(args.backend, info["interpreter"],
                                 args.out / "parity" / f"{schema.label_folder(label)}.jsonl")
               for label, info in checked.items()})
    rows, text = [], ""
    for config in args.config_list:
        paths = configs.fast_paths(config, args.backend, "cpu")
        if isinstance(paths, str) or (config == "best" and not paths):
            text += f"## {config}\n\n{args.backend} has no {config} configuration on a CPU ({paths or 'spec'})\n\n"
            continue
        try:
            mine = table_rows(args, labels, repeat_runs(args, labels, config, paths), parity, config)
        except UsageError as exc:
            print(f"benchmarks.versions: error: {exc}", file=sys.stderr)
            return 1
        rows += mine
        text += f"## {config}: {configs.label(paths)}\n\n{markdown(mine)}\n"
    text += parity_markdown(parity, {r["label"]: r["version"] for r in rows})
    finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(write(args, rows, text, command, started, finished))
    return 0


if __name__ == "__main__":
    sys.exit(main())

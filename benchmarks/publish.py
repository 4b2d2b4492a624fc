"""Published tables, generated from result files, never typed.

    python -m benchmarks.publish benchmarks/results/<folder>/throughput.json
    python -m benchmarks.publish runs/<stamp>/results.json > benchmarks/tables/<name>.md
    python -m benchmarks.publish --readme [--check]

The first prints one grid's headline table (as the README shows it); the second renders one
run's results.json (numbers, machine, versions, command). The third
rewrites the README's benchmark section, between its markers, with the headline table made from
every benchmarks/results/*/throughput.json (the throughput grid's output): img/s at batch 64 in
spec and best-available per backend and grid, each grid's machine, date and command, its FD of
best against spec, and a link to its full table (throughput.md beside it); then the paired
ratios of the grids in benchmarks/results/batch64/ (best / spec, spec / bare step); then a table
per GPU check on a GPU
(benchmarks/results/*/summary.json of benchmarks.gpu_check, not its smoke runs); --check only
says whether the README is stale (exit 1).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from benchmarks import grid_output
from benchmarks.gpu_check import summary as gpu_summary
from benchmarks.grid_rows import row_label
from common import atomic
from common.results import schema, seed_spread, tables
from common.results.seed_spread import backend_versions
from common.results.markdown import machine_line
from common.spec import PRESETS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS_DIR = REPO / "benchmarks" / "results"
# The paired grids (batch 64 only, spec, best and the bare loop interleaved over several repeats):
# where the README's ratios of best to spec and of spec to the bare loop are read.
PAIRED = "batch64"
START, END = "<!-- benchmarks:start (python -m benchmarks.publish --readme) -->", "<!-- benchmarks:end -->"


def render(results: dict) -> str:
    prov, cfg = results["provenance"], results["config"]
    ds = results.get("dataset") or {}
    rows = [r for r in tables.summary_rows(results) if r["status"] == "ok"]
    for r in rows:  # the harness's own share of wall time: the methodology requires it small
        s = results["backends"][r["backend"]].get("summary") or {}
        frac = s.get("harness_overhead_fraction")
        r["harness overhead"] = f"{100 * frac:.2f}%" if frac is not None else ""
    quality = tables.quality_rows(results)
    git = prov.get("git") or {}
    lines = [
        f"Command: `{results['command']}`",
        "",
        machine_line(prov),
        f"- Software: Python {prov.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items()),
        f"- Run: {ds.get('name', cfg['dataset'])}, preset {cfg['preset']}, batch {cfg['batch_size']}, "
        f"{cfg['iters']} iterations, threads {cfg.get('threads')}, started {results.get('started')}",
        f"- Code: git {git.get('commit')}" + (" (dirty)" if git.get("dirty") else ""),
        "",
        tables.table(rows, "github"),
        "",
    ]
    if quality:
        info = results.get("quality_info") or {}
        lines += [f"Sample quality ({info.get('samples')} fixed-z samples per backend against "
                  "held-out real digits; ± is the evaluator's own bootstrap/subset/split error for "
                  "this one run, not the spread between runs; see docs/quality.md \"Sample quality\"). "
                  + seed_spread.report_words(results), "", tables.table(quality, "github"), ""]
    return "\n".join(lines)


HEADLINE_BATCH = grid_output.HEADLINE_BATCH
REQUESTED = ("spec", "best")  # the headline's two configurations, in its column order


def requested_rows(doc: dict) -> dict[tuple[str, str], dict]:
    """A throughput grid's rows by (label, requested configuration) at HEADLINE_BATCH (the label:
    the backend's name, or NAME@ENV for one run in another Python environment).

    A row names its configuration by its fast paths ("bf16"), not by what was asked for
    ("best"), so the rows are matched back to --configs in the grid's own order: per backend,
    each requested configuration made one row per batch size, or one skipped row (batch "all")
    that says why it did not run; the bare loop's rows come last."""
    requested = doc["args"]["configs"].split(",")
    n_batches = len(doc["args"]["batch_sizes"].split(","))
    found: dict[tuple[str, str], dict] = {}
    for name in dict.fromkeys(row_label(r) for r in doc["rows"]):  # jax and jax@ENV apart
        rows = [r for r in doc["rows"] if row_label(r) == name and r["config"] != "bare loop"]
        for config in requested:
            group, rows = (rows[:1], rows[1:]) if rows and rows[0]["batch"] == "all" else (
                rows[:n_batches], rows[n_batches:])
            at = [r for r in group if str(r["batch"]) in ("all", str(HEADLINE_BATCH))]
            if at:
                found[(name, config)] = at[0]
    return found


def typed_command(command: str, folder: str) -> str:
    """The grid's command as a person types it to make this folder again: `--out` names the
    folder under benchmarks/results/, and the scratch `--work` folder (raw run folders, not
    published; default runs/bench-<timestamp>) is left out."""
    words, out = shlex.split(command), []
    while words:
        word = words.pop(0)
        if word in ("--out", "--work") and words:
            words.pop(0)  # the folder named; --out is rewritten below, --work dropped
            if word == "--out":
                out += ["--out", f"benchmarks/results/{folder}"]
        elif word.startswith(("--out=", "--work=")):
            out += [f"--out=benchmarks/results/{folder}"] if word.startswith("--out=") else []
        else:
            out.append(word)
    return shlex.join(out)


def _cell(row: dict | None) -> str:
    if row is None:
        return "not measured"
    if row["status"] == "skipped":
        return "none (below)"
    if row["status"] != "ok":
        return row["status"]
    return f"{row['img/s']}" + ("" if row["config"].startswith("spec") else f" ({row['config']})")


def grid_versions(doc: dict) -> str:
    """The releases a grid's rows ran, per environment: each backend's framework and companions,
    with the Python and numpy beside them ('torch 2.13.0+cpu, mxnet 1.9.1 (Python 3.11.7, numpy
    1.26.4); in newest: jax 0.12.1, ...'), from the grid's provenance and its environments."""
    prov, envs = doc["provenance"], doc.get("environments") or {}
    groups: dict[str, tuple[str | None, dict]] = {}
    for label in dict.fromkeys(row_label(r) for r in doc["rows"]):
        name, _, env = label.partition("@")
        info = envs.get(label) if env else {"python": prov.get("python"), "packages": prov.get("packages")}
        if info and info.get("packages"):
            groups.setdefault(env, (info.get("python"), {}))[1].update(backend_versions(info["packages"], name))
    parts = []
    for env, (python, packages) in groups.items():
        numpy = packages.pop("numpy", None)
        parts.append((f"in {env}: " if env else "") + ", ".join(f"{k} {v}" for k, v in packages.items())
                     + f" (Python {python}" + (f", numpy {numpy})" if numpy else ")"))
    return "; ".join(parts) or "not recorded"


def tags(docs: list[tuple[str, dict]]) -> list[str]:
    """Each grid's column prefix: its preset, with its folder where two grids share a preset."""
    presets = [doc["args"]["preset"] for _, doc in docs]
    return [p if presets.count(p) == 1 else f"{p} ({folder})" for p, (folder, _) in zip(presets, docs)]


def headline(docs: list[tuple[str, dict]], gpu_checks: bool = False) -> str:
    """The README's headline: per backend, img/s at HEADLINE_BATCH in spec and best-available
    for every grid of benchmarks/results/ (folder, throughput.json), then what each grid
    measured on which machine, when, with which command, and where its full table is."""
    docs = sorted(docs, key=lambda d: (list(PRESETS).index(d[1]["args"]["preset"])
                                       if d[1]["args"]["preset"] in PRESETS else len(PRESETS), d[0]))
    found = [requested_rows(doc) for _, doc in docs]
    names = list(dict.fromkeys(name for f in found for name, _ in f))
    rows = [{"backend": name, **{f"{tag} {config}": _cell(f.get((name, config)))
                                 for tag, f in zip(tags(docs), found) for config in REQUESTED}}
            for name in names]
    devices = sorted({r["device"] for _, doc in docs for r in doc["rows"] if r.get("device")})
    lines = [f"Training img/s at batch {HEADLINE_BATCH} (synthetic data; median step, warm-up "
             "excluded). `spec`: full float32, what the parity tests hold to the float64 oracle; "
             "`best`: the framework's own fast paths on that device (benchmarks/configs.py). "
             f"Measured on: {', '.join(devices) or 'nothing yet'}"
             + ("" if "gpu" in devices else "; GPU: the GPU checks below" if gpu_checks
                else "; no GPU measurement is published") + ".", "",
             tables.table(rows, "github"), ""]
    for tag, (folder, doc) in zip(tags(docs), docs):
        machine = machine_line(doc["provenance"]).removeprefix("- Machine: ")
        full = "full table" + (", with sample quality of best against spec" if doc.get("quality_rows") else "")
        lines.append(f"- {tag}: {machine}; {doc['started'][:10]}, {doc['grid_seconds'] / 60:.0f} min "
                     f"grid: `{typed_command(doc['command'], folder)}` "
                     f"([{full}](benchmarks/results/{folder}/throughput.md)); versions: {grid_versions(doc)}")
        lines += quality_line(tag, doc)
        why = grid_output.quick_try(doc["args"])
        if why:
            lines.append(f"- {tag}: a quick try, not a complete grid ({'; '.join(why)}); "
                         "`publish --readme` leaves it out")
    skipped = {(name, config): row["reason"] for f in found for (name, config), row in f.items()
               if row["status"] == "skipped"}  # one line per backend and reason, in table order
    lines += list(dict.fromkeys(f"- {name}, no `{config}` row: {skipped[(n, config)]}"
                                for name in names for (n, config) in skipped if n == name))
    return "\n".join(lines + [""])


def quality_line(tag: str, doc: dict) -> list[str]:
    """One line: each backend's FD of best against spec, trained alike (the grid's --quality-iters)."""
    rows = [r for r in doc.get("quality_rows") or [] if r.get("status") == "ok" and r.get("FD")]
    if not rows:
        return []
    pairs = []
    for name in dict.fromkeys(row_label(r) for r in rows):
        spec = [r for r in rows if row_label(r) == name and r["config"].startswith("spec")]
        best = [r for r in rows if row_label(r) == name and not r["config"].startswith("spec")]
        if spec and best:
            pairs.append(f"{name} best {best[0]['FD']}, spec {spec[0]['FD']}")
    iters = {r.get("iterations") for r in rows}
    return [f"- {tag}, sample quality of best against spec (FD on real digits, lower is better, "
            f"after {', '.join(map(str, sorted(iters)))} iterations; one seed each, ± the evaluator's "
            "own error, far below the spread between seeds, so no ranking: docs/quality.md): "
            + "; ".join(pairs)]


def paired(docs: list[tuple[str, dict]]) -> str:
    """The paired grids' ratios per backend: `best / spec` (the median over repeats of best's img/s
    over spec's in the same pass, with their range) and `spec / bare` (spec's step time over the
    bare loop's, likewise), then each grid's machine, date, command and full table."""
    docs = sorted(docs, key=lambda d: list(PRESETS).index(d[1]["args"]["preset"])
                  if d[1]["args"]["preset"] in PRESETS else len(PRESETS))
    found = list(zip(tags(docs), (requested_rows(doc) for _, doc in docs)))
    names = list(dict.fromkeys(name for _, f in found for name, _ in f))
    rows = []
    for name in names:
        row = {"backend": name}
        for tag, f in found:
            best, spec = f.get((name, "best")), f.get((name, "spec"))
            row[f"{tag} best / spec"] = ("none" if best and best["status"] == "skipped"
                                         else (best or {}).get("speed / spec", "not measured"))
            row[f"{tag} spec / bare step"] = (spec or {}).get("step / bare step", "not measured")
        rows.append(row)
    repeats = sorted({str(doc["args"].get("repeats")) for _, doc in docs})
    lines = [f"Paired at batch {HEADLINE_BATCH} ({' and '.join(repeats)} interleaved repeats of spec, best and "
             "the bare loop in one grid per preset): `best / spec` is the median over repeats of best's img/s "
             "over spec's in the same pass, `spec / bare step` spec's step time over the bare loop's (the "
             "harness's and the idiom's cost); range across repeats in brackets. Pairing within a pass "
             "cancels the drift between passes that single runs show.", "", tables.table(rows, "github"), ""]
    for tag, (folder, doc) in zip(tags(docs), docs):
        machine = machine_line(doc["provenance"]).removeprefix("- Machine: ")
        lines.append(f"- {tag}, paired: {machine}; {doc['started'][:10]}, {doc['grid_seconds'] / 60:.0f} min grid: "
                     f"`{typed_command(doc['command'], f'{PAIRED}/{folder}')}` "
                     f"([full table](benchmarks/results/{PAIRED}/{folder}/throughput.md)); "
                     f"versions: {grid_versions(doc)}")
    return "\n".join(lines + [""])


# A GPU check's grid in the README: what a reader compares, and where each number comes from.
GPU_CHECK_COLUMNS = ("backend", "config", "batch", "img/s", "as run", "of measured peak", "of datasheet peak",
                     "first step s", "harness share", "J/image")


def gpu_checks() -> list[tuple[str, dict]]:
    """(folder, summary) of every GPU check on a GPU under benchmarks/results/ (its smoke runs and
    CPU runs prove the command, not a GPU, and are left out)."""
    found = []
    for path in sorted(RESULTS_DIR.glob("*/summary.json")):
        doc = json.loads(path.read_text())
        if doc.get("device") == "gpu" and not doc.get("smoke") and "grid" in doc:
            found.append((path.parent.name, doc))
    return found


def gpu_headline(checks: list[tuple[str, dict]]) -> str:
    """Per GPU check: the GPU, driver and CUDA, its date, status and parity on the device, and its
    grid (every cell, with why where one has no number); its full summary linked."""
    lines = ["GPU checks (`python -m benchmarks.gpu_check`, [docs/gpu.md](docs/gpu.md)): training img/s at "
             "dcgan64 on synthetic data, median step; the first step (compile, autotune) apart; joules per "
             "image from nvidia-smi's power over the timed steps.", ""]
    for folder, doc in checks:
        machine = doc["steps"].get("probe", {}).get("machine", {})
        gpus = ", ".join(f"{g.get('name')} (driver {g.get('driver_version')}, {g.get('memory.total')} MiB)"
                         for g in machine.get("gpus", [])) or "no GPU recorded"
        parity = doc["steps"].get("parity") or {}
        runs = doc.get("runs") or [doc]
        lines += [f"- {folder}: {gpus}, CUDA (driver) {machine.get('driver_cuda')}; {runs[0]['started'][:10]}; "
                  f"{doc['status']}; parity on the device {parity.get('status', 'not run')} "
                  f"({parity.get('passed', 0)} passed, {parity.get('failed', 0)} failed); "
                  + "; ".join(f"`{run['command']}`" for run in runs)
                  + f" ([summary](benchmarks/results/{folder}/summary.md))", ""]
        rows = [{c: (r.get(c) if r.get("status") == "ok" or c in GPU_CHECK_COLUMNS[:3] else "")
                 for c in GPU_CHECK_COLUMNS} | ({} if r.get("status") == "ok" else {"img/s": r.get("status")})
                for r in doc["grid"]]
        lines += [tables.table(rows, "github"), "", *gpu_summary.grid_notes(doc["grid"])]
    return "\n".join(lines + [""])


def complete_grids(found: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The grids that stand in the README's headline; each quick try left out is named on stderr."""
    kept = []
    for folder, doc in found:
        why = grid_output.quick_try(doc["args"])
        if why:
            print(f"benchmarks.publish: left out {folder}: a quick try ({'; '.join(why)})", file=sys.stderr)
        else:
            kept.append((folder, doc))
    return kept


def readme_section() -> str:
    docs = complete_grids([(path.parent.name, json.loads(path.read_text()))
                           for path in sorted(RESULTS_DIR.glob("*/throughput.json"))])
    pairs = [(path.parent.name, json.loads(path.read_text()))
             for path in sorted((RESULTS_DIR / PAIRED).glob("*/throughput.json"))]
    checks = gpu_checks()
    if not docs and not checks:
        return "\n".join([START, "(no results yet)", END])
    return "\n".join([START, "", *([headline(docs, gpu_checks=bool(checks))] if docs else []),
                      *([paired(pairs)] if pairs else []), *([gpu_headline(checks)] if checks else []), END])


def update_readme(check: bool) -> int:
    text = README.read_text()
    if START not in text or END not in text:
        print(f"benchmarks.publish: README.md has no {START} ... {END} section", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    new = head + readme_section() + rest.split(END, 1)[1]
    if check:
        if new != text:
            print("README.md's benchmark section is stale: run python -m benchmarks.publish --readme",
                  file=sys.stderr)
            return 1
        return 0
    atomic.write_text(README, new)
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.publish", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m benchmarks.publish benchmarks/results/<machine>-<date>-mnist32/throughput.json\n"
               "  python -m benchmarks.publish runs/<stamp>/results.json > benchmarks/tables/mine.md\n"
               "  python -m benchmarks.publish --readme --check\n"
               "how to measure and publish on your own machine or GPU: docs/publish.md")
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="a grid's throughput.json (python -m benchmarks.throughput): its headline "
                        "table; or a run's results.json (run_all.py): its results table; "
                        "markdown on stdout")
    p.add_argument("--readme", action="store_true",
                   help="rewrite README.md's benchmark section from every "
                        "benchmarks/results/*/throughput.json, the paired grids of "
                        f"benchmarks/results/{PAIRED}/ and the GPU checks (default: off)")
    p.add_argument("--check", action="store_true",
                   help="with --readme: write nothing, exit 1 if the README is stale (default: off)")
    p.error = lambda message: p.exit(2, f"{p.prog}: error: {message} (see --help)\n")
    args = p.parse_args(argv)
    if args.readme == bool(args.file):
        p.error("pass either FILE or --readme")
    if args.check and not args.readme:
        p.error("--check goes with --readme")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.readme:
        return update_readme(check=args.check)
    path = Path(args.file)
    try:
        if path.name == "throughput.json":
            print(headline([(path.parent.name, json.loads(path.read_text()))]))
        else:
            print(render(schema.load_results(path)))
    except FileNotFoundError:
        print(f"benchmarks.publish: {path}: no such file; pass a throughput.json or results.json",
              file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        print(f"benchmarks.publish: {path}: not a results file this version reads ({exc})",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

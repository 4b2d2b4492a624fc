"""Published tables, generated from result files, never typed.

    python -m benchmarks.publish runs/<stamp>/results.json > benchmarks/tables/<name>.md
    python -m benchmarks.publish --readme [--check]

The first renders one run's results.json (numbers, machine, versions, command). The second
rewrites the README's benchmark section from every benchmarks/results/*/throughput.json (the
throughput grid's output); --check only says whether the README is stale (exit 1).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from common import atomic
from common.results import schema, tables

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS_DIR = REPO / "benchmarks" / "results"
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
        f"- Machine: {prov.get('cpu')}, {prov.get('cpu_count')} logical CPUs, "
        + (", ".join(prov["gpus"]) if prov.get("gpus") else "no GPU"),
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
                  "held-out real digits; ± bootstrap/subset/split spread; see README \"Sample "
                  "quality\"):", "", tables.table(quality, "github"), ""]
    return "\n".join(lines)


def grid_summary(doc: dict, folder: str) -> str:
    """One throughput grid as README rows: per backend and configuration, img/s at each batch."""
    a, prov = doc["args"], doc["provenance"]
    batches = [b for b in a["batch_sizes"].split(",")]
    rows: dict[tuple[str, str], dict] = {}
    for r in doc["rows"]:
        if r["status"] == "skipped":
            continue
        row = rows.setdefault((r["backend"], r["config"]), {
            "backend": r["backend"], "config": r["config"], **{f"img/s @{b}": "" for b in batches}})
        row[f"img/s @{r['batch']}"] = r.get("img/s", r["status"])
        if str(r["batch"]) == batches[len(batches) // 2]:  # the middle batch size's details
            row[f"first step s @{r['batch']}"] = r.get("first step s", "")
            row[f"harness share @{r['batch']}"] = r.get("harness share", "")
            row[f"vs bare @{r['batch']}"] = r.get("vs bare", "")
    device = ", ".join(prov["gpus"]) if prov.get("gpus") else f"{prov.get('cpu')}, {prov.get('cpu_count')} logical CPUs"
    lines = [f"**{a['preset']}** on {device}, {doc['started'][:10]} "
             f"([full table](benchmarks/results/{folder}/throughput.md), "
             f"{doc['grid_seconds'] / 60:.0f} min grid, `{doc['command']}`):", "",
             tables.table(list(rows.values()), "github"), ""]
    if doc.get("quality_rows"):
        lines += ["Same code, best path against spec on real digits "
                  f"({a['quality_iters']} iterations, batch 64):", "",
                  tables.table(doc["quality_rows"], "github"), ""]
    return "\n".join(lines)


def readme_section() -> str:
    parts = []
    for path in sorted(RESULTS_DIR.glob("*/throughput.json")):
        parts.append(grid_summary(json.loads(path.read_text()), path.parent.name))
    return "\n".join([START, "", *parts, END]) if parts else "\n".join([START, "(no results yet)", END])


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


def main(argv: list[str]) -> int:
    if argv[:1] == ["--readme"] and set(argv[1:]) <= {"--check"}:
        return update_readme(check="--check" in argv)
    if len(argv) != 1 or argv[0].startswith("--"):
        print("usage: python -m benchmarks.publish RESULTS.json | --readme [--check]", file=sys.stderr)
        return 2
    print(render(schema.load_results(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

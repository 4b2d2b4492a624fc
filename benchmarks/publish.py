"""Render a run's results.json as a published table: numbers, machine, versions and command.

    python -m benchmarks.publish runs/<stamp>/results.json > benchmarks/tables/<name>.md

Tables are generated from result files, never typed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common import report


def render(results: dict) -> str:
    prov, cfg = results["provenance"], results["config"]
    ds = results.get("dataset") or {}
    rows = [r for r in report.summary_rows(results) if r["status"] == "ok"]
    for r in rows:  # the harness's own share of wall time: the methodology requires it small
        s = results["backends"][r["backend"]].get("summary") or {}
        frac = s.get("harness_overhead_fraction")
        r["harness overhead"] = f"{100 * frac:.2f}%" if frac is not None else ""
    quality = report.quality_rows(results)
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
        report.table(rows, "github"),
        "",
    ]
    if quality:
        info = results.get("quality_info") or {}
        lines += [f"Sample quality ({info.get('samples')} fixed-z samples per backend against "
                  "held-out real digits; ± bootstrap/subset/split spread; see README \"Sample "
                  "quality\"):", "", report.table(quality, "github"), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.publish RESULTS.json", file=sys.stderr)
        return 2
    print(render(report.load_results(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

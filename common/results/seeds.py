"""Across training seeds: one row per backend with its mean and spread over a --seeds run's
seeds, and the between-backend test of their FDs (common/results/seedstats.py)."""
from __future__ import annotations

import numpy as np

from common.results import seedstats
from common.results.schema import seed_runs


def seed_values(results: dict, get) -> dict[str, list]:
    """backend -> get(result) over the seeds where it finished ok (None values left out)."""
    runs = seed_runs(results)
    out = {}
    for name in results["backends"]:
        ok = [r[name] for r in runs if name in r and r[name].get("status") == "ok"]
        out[name] = [v for v in map(get, ok) if v is not None]
    return out


def seed_fds(results: dict) -> dict[str, list[float]]:
    return seed_values(results, lambda r: (r.get("quality") or {}).get("fd"))


def seed_test(results: dict) -> dict | None:
    """The between-backend test of FD across a --seeds run's seeds (seedstats), None for one seed
    or fewer than two backends with quality."""
    fds = {k: v for k, v in seed_fds(results).items() if v}
    if not results.get("by_seed") or len(fds) < 2:
        return None
    return seedstats.between_backends(fds, "FD")


def seed_rows(results: dict) -> list[dict]:
    """Mean and spread across training seeds (GAN runs vary more between seeds than between
    evaluation resamples): one row per backend, over the seeds where it finished."""
    if not results.get("by_seed"):
        return []
    runs = seed_runs(results)
    fds = seed_fds(results)
    rows = []
    for name in results["backends"]:
        ok = [r[name] for r in runs if name in r and r[name].get("status") == "ok"]
        row = {"backend": name, "seeds ok": f"{len(ok)}/{len(runs)}"}
        for label, get, digits in (
                ("img/s", lambda r: (r.get("summary") or {}).get("img_per_s_median"), 1),
                ("final loss_D", lambda r: (r.get("final_losses") or {}).get("loss_d"), 3),
                ("final loss_G", lambda r: (r.get("final_losses") or {}).get("loss_g"), 3),
                ("FD", lambda r: (r.get("quality") or {}).get("fd"), 1),
                ("classifier score", lambda r: (r.get("quality") or {}).get("classifier_score"), 2)):
            values = [v for v in map(get, ok) if v is not None]
            row[label] = (f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"
                          if len(values) > 1 else (f"{values[0]:.{digits}f}" if values else ""))
        ci = seedstats.summarize(fds[name])["ci95"] if fds.get(name) else None
        row["FD 95% interval"] = f"{ci[0]:.1f} to {ci[1]:.1f}" if ci else ""
        row["_fds"] = fds.get(name, [])
        rows.append(row)
    return rows

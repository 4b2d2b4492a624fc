"""Two runs side by side: `run_all.py --compare A B` prints what changed from A to B."""
from __future__ import annotations

from common.results.tables import table


def compare_runs(a: dict, b: dict) -> str:
    """What changed from run a to run b, per backend present in either."""
    rows = []
    for name in dict.fromkeys([*a["backends"], *b["backends"]]):
        ra, rb = a["backends"].get(name, {}), b["backends"].get(name, {})
        row = {"backend": name, "status": f"{ra.get('status', '-')} -> {rb.get('status', '-')}"}
        sa, sb = (ra.get("summary") or {}).get("img_per_s_median"), (rb.get("summary") or {}).get("img_per_s_median")
        row["img/s"] = f"{_fmt(sa, 1)} -> {_fmt(sb, 1)}" + (f" ({(sb / sa - 1) * 100:+.1f}%)" if sa and sb else "")
        for key, label in (("loss_d", "final loss_D"), ("loss_g", "final loss_G")):
            va, vb = (ra.get("final_losses") or {}).get(key), (rb.get("final_losses") or {}).get(key)
            row[label] = f"{_fmt(va, 3)} -> {_fmt(vb, 3)}"
        qa, qb = ra.get("quality") or {}, rb.get("quality") or {}
        row["FD"] = f"{_fmt(qa.get('fd'), 2)} -> {_fmt(qb.get('fd'), 2)}"
        rows.append(row)
    head = []
    for key, label in (("config", "config"), ("provenance", "machine")):
        if key == "config":
            diff = {k: (a["config"].get(k), b["config"].get(k))
                    for k in sorted(set(a["config"]) | set(b["config"]))
                    if a["config"].get(k) != b["config"].get(k)}
        else:
            pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
            diff = {k: (pa.get(k), pb.get(k)) for k in ("cpu", "gpus", "packages") if pa.get(k) != pb.get(k)}
        head += [f"{label} differs: {k}: {va} -> {vb}" for k, (va, vb) in diff.items()]
    return "\n".join(head + ([""] if head else []) + [table(rows, "simple")])


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"

"""Two runs side by side: `run_all.py --compare A B` prints what changed from A to B."""
from __future__ import annotations

from common.results import schema
from common.results.tables import headline_losses, table

# Run-to-run spread of one backend's img/s between two single runs minutes apart on a shared
# machine, measured on the 2-core development VM (benchmarks/README.md#run-to-run-spread-on-the-
# development-vm-measured: 430-668 img/s for the same code, differences under ~25% mean nothing).
RUN_TO_RUN_SPREAD = 0.25
# Loads this far apart (1-minute load average, the larger of before/after) are flagged.
LOAD_DIFFERS_BY = 1.0


def noise_verdict(a: dict, b: dict, spread: float = RUN_TO_RUN_SPREAD) -> str:
    """'beyond noise' only when the two runs' img/s IQRs do not overlap AND the medians differ
    by more than the run-to-run spread (relative to the slower); else 'within noise'. The rule
    is documented in docs/outputs.md#noise."""
    ma, mb = a.get("img_per_s_median"), b.get("img_per_s_median")
    ia, ib = a.get("img_per_s_iqr"), b.get("img_per_s_iqr")
    if not (ma and mb and ia and ib):
        return ""
    disjoint = ia[1] < ib[0] or ib[1] < ia[0]
    return "beyond noise" if disjoint and abs(mb - ma) / min(ma, mb) > spread else "within noise"


def peak_load(r: dict) -> float | None:
    load = r.get("machine_load") or {}
    values = [v for v in (load.get("load1_before"), load.get("load1_after")) if v is not None]
    return max(values) if values else None


def compare_runs(a: dict, b: dict) -> str:
    """What changed from run a to run b, per backend present in either."""
    rows, loads = [], []
    for name in dict.fromkeys([*a["backends"], *b["backends"]]):
        ra, rb = a["backends"].get(name, {}), b["backends"].get(name, {})
        row = {"backend": name, "status": f"{ra.get('status', '-')} -> {rb.get('status', '-')}"}
        sa, sb = (ra.get("summary") or {}).get("img_per_s_median"), (rb.get("summary") or {}).get("img_per_s_median")
        row["img/s"] = f"{_fmt(sa, 1)} -> {_fmt(sb, 1)}" + (f" ({(sb / sa - 1) * 100:+.1f}%)" if sa and sb else "")
        row["change"] = noise_verdict(ra.get("summary") or {}, rb.get("summary") or {})
        la, lb = peak_load(ra), peak_load(rb)
        row["load"] = f"{_fmt(la, 1)} -> {_fmt(lb, 1)}" if la is not None or lb is not None else ""
        if la is not None and lb is not None and abs(la - lb) > LOAD_DIFFERS_BY:
            loads.append(f"warning: {name}: the machine's load differed ({la:.1f} -> {lb:.1f}); "
                         "its img/s change is partly the load's")
        ha, hb = headline_losses(ra), headline_losses(rb)
        for label in dict.fromkeys([*ha, *hb]):
            row[label] = f"{ha.get(label) or '-'} -> {hb.get(label) or '-'}"
        qa, qb = ra.get("quality") or {}, rb.get("quality") or {}
        row["FD"] = f"{_fmt(qa.get('fd'), 2)} -> {_fmt(qb.get('fd'), 2)}"
        rows.append(row)
    head = environment_changes(a, b)
    for key, label in (("config", "config"), ("provenance", "machine")):
        if key == "config":
            diff = {k: (a["config"].get(k), b["config"].get(k))
                    for k in sorted(set(a["config"]) | set(b["config"]))
                    if a["config"].get(k) != b["config"].get(k)}
        else:
            pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
            diff = {k: (pa.get(k), pb.get(k)) for k in ("cpu", "gpus", "packages") if pa.get(k) != pb.get(k)}
        head += [f"{label} differs: {k}: {va} -> {vb}" for k, (va, vb) in diff.items()]
    rule = (f"change: 'beyond noise' only when the img/s IQRs do not overlap and the medians differ "
            f"by more than {RUN_TO_RUN_SPREAD:.0%} (the measured run-to-run spread; docs/outputs.md#noise)")
    return "\n".join(head + ([""] if head else []) + [table(rows, "simple"), "", rule] + loads)


def environment_changes(a: dict, b: dict) -> list[str]:
    """One line per label present in both runs whose package versions changed ('jax: jax 0.6.2
    -> 0.12.0, numpy 1.26.4 -> 2.5.5'): what upgrading changed is read beside it."""
    lines = []
    for label in [k for k in a["backends"] if k in b["backends"]]:
        pa, pb = schema.row_packages(a, label), schema.row_packages(b, label)
        changed = [f"{k} {pa.get(k, '-')} -> {pb.get(k, '-')}" for k in dict.fromkeys([*pa, *pb])
                   if pa.get(k) != pb.get(k) and k != "setuptools"]
        if changed:
            lines.append(f"{label} packages differ: {', '.join(changed)}")
    return lines


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"

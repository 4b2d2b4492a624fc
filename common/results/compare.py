"""Two runs side by side: `run_all.py --compare A B` prints what changed from A to B."""
from __future__ import annotations

from common.results import schema, seed_spread
from common.results.tables import (
    RUN_TO_RUN_SPREAD,
    headline_losses,
    noise_verdict,
    table,
)

# Loads this far apart (1-minute load average, the larger of before/after) are flagged.
LOAD_DIFFERS_BY = 1.0


def peak_load(r: dict) -> float | None:
    load = r.get("machine_load") or {}
    values = [v for v in (load.get("load1_before"), load.get("load1_after")) if v is not None]
    return max(values) if values else None


def compare_runs(a: dict, b: dict) -> str:
    """What changed from run a to run b, per backend present in either."""
    rows, loads = [], []
    study = seed_spread.match(a)
    if study and seed_spread.match(b) is None:
        study = None  # the two runs are not both at the study's setting
    for name in dict.fromkeys([*a["backends"], *b["backends"]]):
        ra, rb = a["backends"].get(name, {}), b["backends"].get(name, {})
        row = {"backend": name, "status": f"{ra.get('status', '-')} -> {rb.get('status', '-')}"}
        sa, sb = (ra.get("summary") or {}).get("img_per_s_median"), (rb.get("summary") or {}).get("img_per_s_median")
        row["img/s"] = f"{_fmt(sa, 1)} -> {_fmt(sb, 1)}" + (f" ({(sb / sa - 1) * 100:+.1f}%)" if sa and sb else "")
        row["img/s change"] = noise_verdict(ra.get("summary") or {}, rb.get("summary") or {})
        la, lb = peak_load(ra), peak_load(rb)
        row["peak load"] = f"{_fmt(la, 1)} -> {_fmt(lb, 1)}" if la is not None or lb is not None else ""
        if la is not None and lb is not None and abs(la - lb) > LOAD_DIFFERS_BY:
            loads.append(f"warning: {name}: the machine's load differed ({la:.1f} -> {lb:.1f}); "
                         "its img/s change is partly the load's")
        ha, hb = headline_losses(ra), headline_losses(rb)
        for label in dict.fromkeys([*ha, *hb]):
            row[label] = f"{ha.get(label) or '-'} -> {hb.get(label) or '-'}"
        qa, qb = ra.get("quality") or {}, rb.get("quality") or {}
        row["FD"] = f"{_fmt(qa.get('fd'), 2)} -> {_fmt(qb.get('fd'), 2)}"
        row["FD change"] = fd_verdict(qa.get("fd"), qb.get("fd"), study)
        rows.append(row)
    head = environment_changes(a, b)
    for key, label in (("config", "config"), ("provenance", "machine")):
        if key == "config":
            ca, cb = _flat(a["config"]), _flat(b["config"])
            diff = {k: (ca.get(k), cb.get(k)) for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)}
        else:
            pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
            diff = {k: (pa.get(k), pb.get(k)) for k in ("cpu", "gpus", "packages") if pa.get(k) != pb.get(k)}
        head += [f"{label} differs: {k}: {_show(va)} -> {_show(vb)}" for k, (va, vb) in diff.items()]
    rule = ("every cell: run A -> run B; peak load: the larger of the 1-minute load averages before and "
            "after that backend's run (the run table's load is one run's before -> after)\n"
            f"img/s change: 'beyond noise' only when the img/s IQRs do not overlap and the medians differ "
            f"by more than {RUN_TO_RUN_SPREAD:.0%} (the measured run-to-run spread; docs/outputs.md#noise)")
    rule += "\n" + fd_rule(study)
    return "\n".join(head + ([""] if head else []) + [table(rows, "simple"), "", rule] + loads)


def fd_verdict(fa: float | None, fb: float | None, study: dict | None) -> str:
    """'beyond noise' only past the seed spread the committed study measured at this setting;
    'not judged' without a matching study (one seed's bootstrap ± is no run-to-run noise)."""
    if fa is None or fb is None:
        return ""
    if not study or not study.get("fd_std_pooled"):
        return "not judged"
    return "beyond noise" if abs(fb - fa) > seed_spread.threshold(study) else "within noise"


def fd_rule(study: dict | None) -> str:
    """The line under the table that says how an FD change was judged."""
    if not study:
        return ("FD change: not judged: no committed seed study matches these runs' setting "
                f"({seed_spread.STUDY_LINK}); train both with --seeds to measure the spread")
    if study.get("fd_std_pooled") is None:
        return ("FD change: not judged: the seed study at this setting has one seed per backend so "
                f"far, no spread yet ({seed_spread.STUDY_LINK}); train both with --seeds to measure it")
    return (f"FD change: 'beyond noise' only when the FDs differ by more than t·√2 × the seed std "
            f"the seed study measured at this setting ({study['fd_std_pooled']:.0f} pooled over "
            f"{study['fd_std_df']} degrees of freedom: {seed_spread.threshold(study):.0f}; "
            f"{seed_spread.STUDY_LINK}); 5% of two seeds of one backend land beyond it")


def _flat(config: dict, prefix: str = "") -> dict:
    """{"quality": {"every": 50}} -> {"quality.every": 50}: one line per setting that differs."""
    flat = {}
    for k, v in config.items():
        flat.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return flat


def _show(value) -> str:
    """A setting as typed on a command line: 50 not 50.0, a list comma-joined, none for unset."""
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(map(_show, value))
    return str(value)


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

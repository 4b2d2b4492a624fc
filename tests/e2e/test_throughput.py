"""The benchmark grid (benchmarks/throughput.py), its configurations, FLOP counts and publishing."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from benchmarks import configs, publish
from common.metrics import flops
from common.spec import model_spec
from tests.support.backends import require_backend
from tests.support.processes import REPO


def _run(img_s):
    """One ok run of a cell at img_s, as the grid records it (the pairing tests' unit)."""
    return {"status": "ok", "load_before": 0.1, "device": {"device": "cpu"},
            "summary": {"img_per_s_median": img_s, "img_per_s_iqr": [img_s, img_s],
                        "first_step_seconds": 0.1, "steps": 10, "peak_memory": {"bytes": 1, "kind": "rss"}}}


@pytest.mark.slow
def test_grid_writes_rows_figure_and_table(tmp_path):
    require_backend("pytorch")
    out = tmp_path / "grid"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--backend", "pytorch",
                           "--batch-sizes", "4,8", "--images", "16", "--min-iters", "3", "--bare",
                           "--configs", "spec,xla", "--out", str(out), "--work", str(tmp_path / "work")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "throughput.json").read_text())
    rows = doc["rows"]
    # the time box: ceil(16 images / batch) iterations, at least 3
    assert [(r["config"], r["batch"], r.get("iters")) for r in rows] == [
        ("spec (float32)", 4, 4), ("spec (float32)", 8, 3), ("xla", "all", None),
        ("bare loop", 4, 4), ("bare loop", 8, 3)]
    assert rows[2]["status"] == "skipped" and "pytorch has no xla" in rows[2]["reason"]
    for r in rows[:2] + rows[3:]:
        assert r["status"] == "ok" and r["img/s"] > 0 and r["device"] == "cpu"
        # img/s is printed to 0.1 and GFLOP/s to 3 significant digits
        gflop = doc["flops_per_image"] / 1e9
        assert r["GFLOP/s"] == pytest.approx(r["img/s"] * gflop, rel=5e-3, abs=0.05 * gflop)
        assert "get_num_threads=" in r["threads"]
        # the cell against the GEMM peak measured at the grid's start (a rough bound: a conv
        # net's model FLOP rate can exceed a short GEMM's on a loaded machine, never by far)
        assert 0 < float(r["of measured peak"].rstrip("%")) / 100 <= 1.5
        if Path("/proc/stat").exists():  # measured around every run, bare loops too
            assert r["CPU stolen"].endswith("%")
    assert doc["peaks"]["cpu"]["fp32"]["flops"] > 0 and "matmul" in doc["peaks"]["cpu"]["fp32"]["method"]
    for spec_row, bare_row in zip(rows[:2], rows[3:]):  # the harness's cost against the bare loop
        assert float(spec_row["vs bare"].rstrip("%")) == pytest.approx(
            100 * (1 - spec_row["img/s"] / bare_row["img/s"]), abs=0.1)
    text = (out / "throughput.md").read_text()
    assert "Machine:" in text and "| pytorch" in text and "nan" not in text
    image = mpimg.imread(out / "scaling.png")
    assert image.std() > 0.01  # something was drawn


@pytest.mark.slow
def test_a_grid_of_a_label_runs_its_cells_and_bare_loop_in_that_interpreter(tmp_path):
    """The grid with --backend NAME@ENV, ENV this interpreter's absolute path (nothing built):
    the spec cell and the bare loop both run, their rows carry the label, and the harness's cost
    is taken against that label's bare loop."""
    require_backend("pytorch")
    label = f"pytorch@{sys.executable}"
    out = tmp_path / "grid"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--backend", label, "--batch-sizes", "4",
                           "--images", "8", "--min-iters", "2", "--bare", "--configs", "spec", "--device", "cpu",
                           "--peak-seconds", "0", "--out", str(out), "--work", str(tmp_path / "work")],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "throughput.json").read_text())
    assert [(r["backend"], r["label"], r["config"], r["status"]) for r in doc["rows"]] == [
        ("pytorch", label, "spec (float32)", "ok"), ("pytorch", label, "bare loop", "ok")]
    assert "vs bare" in doc["rows"][0]
    assert doc["environments"][label]["packages"]["torch"]
    text = (out / "throughput.md").read_text()
    assert f"- environment {sys.executable} ({label}): Python" in text and f"| {label} " in text


def test_a_cell_is_the_median_over_repeats_with_their_range():
    from benchmarks.grid_rows import cell_row

    def run(img_s, first):
        return {"status": "ok", "load_before": 0.1, "device": {"device": "cpu", "threads": {"t": 2}},
                "summary": {"img_per_s_median": img_s, "img_per_s_iqr": [img_s - 1, img_s + 1],
                            "first_step_seconds": first, "steps": 10, "harness_overhead_fraction": 0.01,
                            "peak_memory": {"bytes": 2**20 * 100, "kind": "rss"}}}
    row = cell_row(model_spec("mnist32"), "pytorch", "spec (float32)", 64,
                   [run(100.0, 0.5), run(300.0, 0.1), run(200.0, 0.3), {"status": "failed", "load_before": 3.0}])
    assert (row["runs"], row["img/s"], row["range across runs"], row["first step s"]) == (3, 200.0, "100.0-300.0", 0.3)
    assert row["load before"] == 3.0 and row["peak MiB"] == "100 (rss)" and row["of datasheet peak"] == ""
    assert row["of measured peak"] == ""  # no peak measured: no fraction
    assert row["CPU stolen"] == ""  # not known for any run: nothing claimed
    runs = [dict(run(100.0, 0.5), cpu_stolen=0.045), dict(run(90.0, 0.5), cpu_stolen=0.127),
            dict(run(95.0, 0.5), cpu_stolen=None)]
    assert cell_row(model_spec("mnist32"), "tensorflow", "spec (float32)", 64, runs)["CPU stolen"] == "12.7%"


def test_repeats_pair_with_the_bare_loop_as_step_time_ratios():
    from benchmarks.grid_rows import add_bare_comparison, cell_row

    spec = model_spec("mnist32")
    # repeat k of spec against repeat k of bare: step-time ratios 1.0, 1.25, 1.1, median 1.1;
    # the cells' own medians (100 and 100 img/s) would hide that cost
    cell = cell_row(spec, "mxnet", "spec (float32)", 64, [_run(100.0), _run(80.0), _run(100.0)])
    bare = cell_row(spec, "mxnet", "bare loop", 64, [_run(100.0), _run(100.0), _run(110.0)])
    add_bare_comparison([cell, bare])
    assert cell["step / bare step"] == "1.100 (1.000-1.250)" and cell["vs bare"] == "+0.0%"


def test_a_fast_path_pairs_with_spec_per_repeat():
    from benchmarks.grid_rows import add_spec_comparison, cell_row

    spec = model_spec("mnist32")
    # per repeat 150/100, 120/80, 130/100 -> 1.50, 1.50, 1.30: median 1.50, range 1.30-1.50; the
    # cells' own medians (130 over 100) would say 1.30
    base = cell_row(spec, "pytorch", "spec (float32)", 64, [_run(100.0), _run(80.0), _run(100.0)])
    fast = cell_row(spec, "pytorch", "channels_last+bf16", 64, [_run(150.0), _run(120.0), _run(130.0)])
    bare = cell_row(spec, "pytorch", "bare loop", 64, [_run(100.0), _run(100.0), _run(100.0)])
    other = cell_row(spec, "pytorch", "channels_last+bf16", 16, [_run(1.0)])  # no spec at batch 16
    add_spec_comparison([base, fast, bare, other])
    assert fast["speed / spec"] == "1.50x (1.30-1.50)"
    assert "speed / spec" not in base and "speed / spec" not in bare and "speed / spec" not in other
    one = cell_row(spec, "pytorch", "channels_last+bf16", 64, [_run(150.0)])
    add_spec_comparison([cell_row(spec, "pytorch", "spec (float32)", 64, [_run(100.0)]), one])
    assert one["speed / spec"] == "1.50x"  # one repeat: the ratio of the two cells, no range


def test_a_grid_of_one_batch_size_draws_every_run(tmp_path, monkeypatch):
    """Lines against batch size would stack a one-batch grid's cells on one x: it draws each
    run as a dot in its cell's column, the median as a bar, and the table lists the runs."""
    from benchmarks import grid_output
    from benchmarks.grid_rows import cell_row

    spec = model_spec("mnist32")
    rows = [cell_row(spec, "pytorch", "spec (float32)", 64, [_run(100.0), _run(80.04), {"status": "failed", "load_before": 0}]),
            cell_row(spec, "pytorch", "bare loop", 64, [_run(110.0), _run(90.0), _run(95.0)]),
            cell_row(spec, "jax", "spec (float32)", 64, [_run(50.0), _run(60.0), _run(55.0)])]
    assert rows[0]["img/s per run"] == [100.0, 80.0, None]
    doc = {"args": {"preset": "mnist32", "images": 64, "repeats": 3, "min_iters": 8, "threads": 2,
                    "quality_iters": 0},
           "provenance": {"cpu": "test CPU", "cpu_count": 2}, "started": "2026-12-02T00:00:00",
           "finished": "2026-12-02T00:01:00", "grid_seconds": 60, "command": "x", "flops_per_image": 1e9,
           "peaks": {}, "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}
    drawn = {}
    monkeypatch.setattr(grid_output, "save_figure", lambda fig, path: drawn.update(fig=fig))
    grid_output.scaling_figure(doc, rows, tmp_path / "scaling.png")
    ax = drawn["fig"].axes[0]
    dots = sorted(round(float(y), 1) for line in ax.lines if line.get_marker() == "o" for y in line.get_ydata())
    assert dots == [50.0, 55.0, 60.0, 80.0, 90.0, 95.0, 100.0, 110.0]  # every run, the failed one left out
    bars = sorted(float(line.get_ydata()[0]) for line in ax.lines if line.get_linewidth() == 2.5)
    assert bars == sorted(r["img/s"] for r in rows)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pytorch", "jax"]
    assert "| 100.0, 80.0, - " in grid_output.render(doc)  # the runs in pass order, the failed one as -


def test_a_label_s_cells_pair_with_its_own_bare_loop_and_show_its_environment():
    """jax and jax@ENV are two rows each, keyed by label (the plain name in "backend"): each spec
    cell pairs with the bare loop of its own label, and the table names ENV's versions."""
    from benchmarks import grid_output
    from benchmarks.grid_rows import add_bare_comparison, cell_row
    spec, other = model_spec("mnist32"), "jax@/opt/other/bin/python"
    rows = [cell_row(spec, "jax", "spec (float32)", 64, [_run(100.0)]),
            cell_row(spec, "jax", "bare loop", 64, [_run(125.0)]),
            cell_row(spec, other, "spec (float32)", 64, [_run(90.0)]),
            cell_row(spec, other, "bare loop", 64, [_run(100.0)])]
    add_bare_comparison(rows)
    assert [(r["backend"], r["label"]) for r in rows] == [("jax", "jax")] * 2 + [("jax", other)] * 2
    assert (rows[0]["vs bare"], rows[2]["vs bare"]) == ("+20.0%", "+10.0%")  # each against its own
    doc = {"args": {"preset": "mnist32", "images": 64, "repeats": 1, "min_iters": 8, "threads": 2,
                    "quality_iters": 0, "backend": f"jax,{other}"},
           "provenance": {"cpu": "test CPU", "cpu_count": 2, "python": "3.11.7", "packages": {"jax": "0.4.30"}},
           "started": "2026-12-02T00:00:00", "finished": "2026-12-02T00:01:00", "grid_seconds": 60,
           "command": "x", "flops_per_image": 1e9, "peaks": {},
           "environments": {other: {"name": "/opt/other/bin/python", "python": "3.12.3",
                                    "packages": {"numpy": "2.3.1", "jax": "0.7.0"}}},
           "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}
    text = grid_output.render(doc)
    assert "- Software: Python 3.11.7; jax 0.4.30" in text
    assert f"- environment /opt/other/bin/python ({other}): Python 3.12.3, numpy 2.3.1, jax 0.7.0" in text
    header = next(line for line in text.splitlines() if line.startswith("| backend"))
    assert [c.strip() for c in header.strip("|").split("|")][:3] == ["backend", "label", "config"]
    assert f"| {other} " in grid_output.terminal(doc, Path("out"))
    # a grid of plain names only shows no label column
    plain = dict(doc, rows=doc["rows"][:2], environments={})
    assert "label" not in grid_output.render(plain) and "label" not in grid_output.terminal(plain, Path("out"))


def test_a_grid_runs_a_label_s_cells_and_bare_loop_in_its_interpreter(tmp_path, monkeypatch):
    """--backend NAME@ENV (ENV this interpreter's absolute path, so no environment is built):
    the environment is checked before any cell, every cell gets the label, the bare loop runs in
    ENV's interpreter by the plain name, and the rows and table carry the label."""
    require_backend("pytorch")
    from benchmarks import throughput
    label = f"pytorch@{sys.executable}"
    seen = []

    def harness(args, name, paths, batch, out, **kw):
        seen.append(("harness", name))
        return dict(_run(100.0), environment={"name": sys.executable, "python": "3.x",
                                              "packages": {"torch": "9.9"}})

    real_run = subprocess.run

    def run(cmd, **kwargs):  # the bare loop is seen, not run; the environment's probe runs
        if "benchmarks.bare" not in cmd:
            return real_run(cmd, **kwargs)
        seen.append(("bare", cmd[0], cmd[cmd.index("--backend") + 1]))
        return subprocess.CompletedProcess(cmd, 1, "", "stopped here")

    monkeypatch.setattr(throughput, "harness_cell", harness)
    monkeypatch.setattr(subprocess, "run", run)
    code = throughput.main(["--backend", label, "--batch-sizes", "4", "--images", "8", "--configs", "spec",
                            "--bare", "--peak-seconds", "0", "--device", "cpu", "--out", str(tmp_path / "grid"),
                            "--work", str(tmp_path / "work")])
    assert code == 0
    assert seen == [("harness", label), ("bare", sys.executable, "pytorch")]
    doc = json.loads((tmp_path / "grid" / "throughput.json").read_text())
    assert [(r["backend"], r["label"], r["config"]) for r in doc["rows"]] == [
        ("pytorch", label, "spec (float32)"), ("pytorch", label, "bare loop")]
    assert doc["environments"][label]["packages"] == {"torch": "9.9"}
    assert "torch 9.9" in (tmp_path / "grid" / "throughput.md").read_text()


def test_a_cell_is_a_fraction_of_the_measured_peak_at_its_precision():
    from benchmarks import peak
    from benchmarks.grid_rows import cell_row
    run = {"status": "ok", "load_before": 0.1, "device": {"device": "cpu", "threads": {"t": 2}},
           "summary": {"img_per_s_median": 100.0, "img_per_s_iqr": [99, 101], "first_step_seconds": 0.1,
                       "steps": 10, "peak_memory": {"bytes": 2**20, "kind": "rss"}}}
    spec = model_spec("mnist32")
    gflops = 100.0 * flops.iteration_flops_per_image(spec) / 1e9
    peaks = {"cpu": {"fp32": {"flops": 4 * gflops * 1e9}, "bf16": {"flops": 8 * gflops * 1e9}},
             "gpu": {"fp32": {"flops": 1e15}}}
    rows = {c: cell_row(spec, "pytorch", c, 64, [run], peaks)["of measured peak"]
            for c in ("spec (float32)", "channels_last+bf16", "bare loop")}
    assert rows == {"spec (float32)": "25.0%", "channels_last+bf16": "12.5%", "bare loop": "25.0%"}
    assert peak.fraction(gflops, {"cpu": {"bf16": {"flops": None, "reason": "x"}}}, "cpu", "bf16") is None


def test_the_measured_peak_is_a_large_gemm_with_its_method_recorded():
    """Not timed: the peak is some positive rate, with the method, size and blocks behind it."""
    from benchmarks import peak
    result = peak.measure(["fp32"], "cpu", threads=1, seconds=0.2, block=0.01)["fp32"]
    assert result["flops"] > 0 and result["median_flops"] <= result["flops"]
    assert "matmul" in result["method"] and result["size"] in peak.SIZES["cpu"] and result["blocks"] >= 1
    assert {t["method"].split()[0] for t in result["tried"] if "flops" in t} >= {"numpy"}
    assert "cpu fp32:" in peak.describe({"cpu": {"fp32": result}})


@pytest.mark.slow
def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad in (["--batch-sizes", "8,x"], ["--configs", "spec,turbo"], ["--backend", "nosuch"],
                ["--peaks", str(tmp_path / "missing.json")], ["--peaks", str(tmp_path / "list.json")]):
        proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", *bad, "--out", str(tmp_path / "s")],
                              cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 2 and bad[0] in proc.stderr or "unknown" in proc.stderr
        assert not (tmp_path / "s").exists()


def test_configurations_say_why_a_cell_does_not_run():
    assert configs.fast_paths("spec", "mxnet", "cpu") == ()
    assert configs.fast_paths("bf16+xla", "tensorflow", "cpu") == ("bf16", "xla")
    assert "no compile" in configs.fast_paths("compile", "tensorflow", "cpu")
    for name in ("pytorch", "tensorflow", "mxnet", "chainer", "jax"):
        for device in ("cpu", "gpu"):  # best is either fast paths that exist or a reason
            best = configs.fast_paths("best", name, device)
            assert isinstance(best, str) or all(name in configs.FAST_PATHS[p][1] for p in best)
    with pytest.raises(configs.ConfigError, match="turbo"):
        configs.fast_paths("bf16+turbo", "pytorch", "cpu")
    assert configs.flags(("channels_last", "bf16")) == ["--channels-last", "--bf16"]


def test_max_autotune_is_a_pytorch_configuration_that_run_all_parses():
    import run_all
    alternative = configs.BEST_ALTERNATIVES["pytorch"]["gpu"]
    assert "+".join(alternative) == "channels_last+bf16+max_autotune"
    # best on the GPU with torch.compile's max-autotune in place of its default mode
    assert tuple(p for p in alternative if p != "max_autotune") == \
        tuple(p for p in configs.BEST["pytorch"]["gpu"] if p != "compile")
    paths = configs.fast_paths("+".join(alternative), "pytorch", "gpu")
    args = run_all.parse_args(configs.flags(paths))
    assert (args.channels_last, args.bf16, args.compile, args.compile_mode) == (True, True, True, "max-autotune")
    assert run_all.parse_args(configs.flags(configs.BEST["pytorch"]["gpu"])).compile_mode == "default"
    assert "no max_autotune" in configs.fast_paths("max_autotune", "jax", "gpu")
    assert configs.label(paths) == "channels_last+bf16+max_autotune"


def test_flops_count_every_multiply_add_of_the_layer_table():
    spec = model_spec("dcgan64")
    g0 = spec.generator[0]  # 100 -> 512 channels, 1x1 -> 4x4: each input scatters 512·16 MACs
    assert flops.layer_flops(g0) == 2 * 100 * 512 * 16
    # a conv and the deconv that mirrors it (same channels and sizes, swapped) do the same work
    for conv, deconv in zip(spec.discriminator[:-1], reversed(spec.generator[1:])):
        assert (conv.in_channels, conv.out_channels) == (deconv.out_channels, deconv.in_channels)
        assert flops.layer_flops(conv) == flops.layer_flops(deconv)
    f_g, f_d = flops.forward_flops(spec.generator), flops.forward_flops(spec.discriminator)
    d0 = flops.layer_flops(spec.discriminator[0])
    assert flops.iteration_flops_per_image(spec) == 3 * f_g - flops.layer_flops(g0) + 7 * f_d - 2 * d0
    assert math.isclose(flops.iteration_flops_per_image(model_spec("mnist32")) / 1e9, 0.3414, rel_tol=1e-3)


def test_dense_peaks_only_for_known_gpus():
    assert flops.dense_peak_flops("NVIDIA H100 80GB HBM3", "fp32") == pytest.approx(66.9e12)
    assert flops.dense_peak_flops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756e12)
    assert flops.dense_peak_flops("Intel Xeon", "fp32") is None


def test_readme_benchmark_section_is_generated_from_results():
    """The README's tables are exactly what `python -m benchmarks.publish --readme` makes from
    the committed benchmarks/results/: no hand-typed or stale number."""
    assert publish.update_readme(check=True) == 0, "run: python -m benchmarks.publish --readme"


def _grid(preset: str, pytorch_best: str | None) -> dict:
    """A throughput.json as benchmarks.throughput writes it: pytorch spec and best (or a skipped
    best), mxnet spec with a skipped best, both beside their bare loops."""
    def cells(name, config, scale):
        return [{"backend": name, "config": config, "batch": b, "status": "ok", "device": "cpu",
                 "img/s": scale * b} for b in (16, 64, 256)]
    skipped = {"status": "skipped", "batch": "all", "config": "best", "reason": "no fast path here"}
    best = cells("pytorch", pytorch_best, 2.0) if pytorch_best else [{"backend": "pytorch", **skipped}]
    return {"args": {"batch_sizes": "16,64,256", "preset": preset, "configs": "spec,best", "quality_iters": 0},
            "provenance": {"cpu": "X", "cpu_count": 2, "gpus": []}, "started": "2026-11-23T18:00:00",
            "grid_seconds": 600, "command": f"python -m benchmarks.throughput --preset {preset}",
            "rows": [*cells("pytorch", "spec (float32)", 1.0), *best, *cells("pytorch", "bare loop", 1.5),
                     *cells("mxnet", "spec (float32)", 3.0), {"backend": "mxnet", **skipped},
                     *cells("mxnet", "bare loop", 3.5)]}


def test_headline_is_img_per_s_at_batch_64_in_spec_and_best_per_preset():
    text = publish.headline([("cpu-2026-11-23-dcgan64", _grid("dcgan64", None)),
                             ("cpu-2026-11-23-mnist32", _grid("mnist32", "bf16"))])
    table = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    # mnist32 (the default preset) first; batch 64 only, never the bare loop's 96.0 or 224.0
    assert cells[0] == ["backend", "mnist32 spec", "mnist32 best", "dcgan64 spec", "dcgan64 best"]
    assert cells[2] == ["pytorch", "64.0", "128.0 (bf16)", "64.0", "none (below)"]
    assert cells[3] == ["mxnet", "192.0", "none (below)", "192.0", "none (below)"]
    assert "- pytorch, no `best` row: no fast path here" in text and text.count("no fast path here") == 2
    assert "(benchmarks/results/cpu-2026-11-23-mnist32/throughput.md)" in text
    assert "`python -m benchmarks.throughput --preset dcgan64`" in text and "2026-11-23" in text
    assert "no GPU measurement is published" in text


def test_readme_update_rewrites_only_between_the_markers(tmp_path, monkeypatch):
    grid = tmp_path / "results" / "cpu-2026-11-23-mnist32"
    grid.mkdir(parents=True)
    (grid / "throughput.json").write_text(json.dumps(_grid("mnist32", "bf16")))
    readme = tmp_path / "README.md"
    readme.write_text(f"# front page\n\n{publish.START}\nold numbers\n{publish.END}\n\nmore\n")
    monkeypatch.setattr(publish, "README", readme)
    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path / "results")
    assert publish.update_readme(check=True) == 1  # stale
    assert publish.update_readme(check=False) == 0
    text = readme.read_text()
    assert text.startswith(f"# front page\n\n{publish.START}\n") and text.endswith(f"{publish.END}\n\nmore\n")
    assert "old numbers" not in text and "| pytorch" in text
    assert publish.update_readme(check=True) == 0

#!/usr/bin/env bash
# usage: bash tools/gpu_session.sh [--out DIR] [benchmarks.gpu_check's options]
#
# The GPU check on a GPU node without network, in one command (docs/gpu.md, "A GPU node without
# network"). It installs the wheel folder wheels/ (from `python -m tools.wheelhouse --out
# wheels/`, if present) beside the node's own stack with pip's --target, runs the GPU check (no
# options given: --budget 6), and writes into DIR what to bring back: the check's log
# (gpu_check.log), its summary.md, and gpu-check.tgz, its results folder without the heavy files
# the folder's own .gitignore names (weights, samples, run folders): exactly what is committed.
#
#   --out DIR   where those three files go (default: runs/gpu-session/; a relative DIR is
#               taken from the checkout's root, where the script runs)
#   DEPS=DIR    where the wheels are installed (default: ~/dcgan-deps); PYTHON: the interpreter
#
# A check the budget cut short (exit 3) continues: untar gpu-check.tgz into benchmarks/results/,
# then `bash tools/gpu_session.sh --resume benchmarks/results/<folder> --budget MIN`.
# The check's own options: python -m benchmarks.gpu_check -h.
# Exit status: the GPU check's (0 done, 1 a step failed, 2 bad usage, 3 partial).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"  # the comment above
    exit 0
fi
out=runs/gpu-session
if [ "${1:-}" = --out ]; then
    [ $# -ge 2 ] || { echo "tools/gpu_session.sh: --out needs a folder (see -h)" >&2; exit 2; }
    out=$2
    shift 2
fi
py=${PYTHON:-python3}
deps=${DEPS:-$HOME/dcgan-deps}
mkdir -p "$out" || { echo "tools/gpu_session.sh: cannot create $out; pass --out DIR" >&2; exit 2; }
if compgen -G "wheels/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$deps" wheels/*.whl \
        || { echo "tools/gpu_session.sh: installing wheels/ into $deps failed" >&2; exit 1; }
    export PYTHONPATH=$deps${PYTHONPATH:+:$PYTHONPATH}
fi
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--budget 6)
PYTHONUNBUFFERED=1 "$py" -m benchmarks.gpu_check "${args[@]}" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
dir=$(sed -n 's/^written: //p' "$out/gpu_check.log" | tail -1)
if [ -n "$dir" ] && [ -d "$dir" ]; then
    cp "$dir/summary.md" "$out/"
    tar czf "$out/gpu-check.tgz" --exclude-from="$dir/.gitignore" -C "$(dirname "$dir")" "$(basename "$dir")"
    echo "gpu_session: $out/ holds gpu_check.log, summary.md and gpu-check.tgz"
    if [ "$rc" -eq 3 ]; then  # last, so that a terminal showing the output's end shows it
        echo "gpu_session: partial (budget). To continue it: untar gpu-check.tgz into benchmarks/results/," \
             "then bash tools/gpu_session.sh --resume benchmarks/results/$(basename "$dir") --budget MIN"
    fi
fi
exit "$rc"

#!/usr/bin/env bash
# A whole GPU session in one command, on a lent GPU node (docs/gpu.md, "A GPU session"):
#   bash tools/gpu_session.sh [benchmarks.gpu_check's options]      (none given: --budget 6)
# It installs the carried wheel folder (wheels/, from `python -m tools.wheelhouse --out wheels/`)
# beside the node's own stack with --target, runs the GPU check, and leaves in $OUT what comes
# back: the check's log, its summary.md, and its results folder as gpu-check.tgz without the
# heavy files its own .gitignore names (weights, samples, run folders): what is committed.
# A rerun continues a check the budget cut short: `--resume benchmarks/results/<folder> --budget 3`
# with that folder untarred into the checkout first, so it travels.
# Exit status: the GPU check's (0 done, 1 a step failed, 2 bad usage, 3 partial).
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=${OUT:?set OUT to the folder whose files come back}
mkdir -p "$out"
if compgen -G "wheels/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/dcgan-deps wheels/*.whl \
        || { echo "tools/gpu_session.sh: installing wheels/ failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/dcgan-deps${PYTHONPATH:+:$PYTHONPATH}
fi
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--budget 6)
PYTHONUNBUFFERED=1 "$py" -m benchmarks.gpu_check "${args[@]}" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
dir=$(sed -n 's/^written: //p' "$out/gpu_check.log" | tail -1)
if [ -n "$dir" ] && [ -d "$dir" ]; then
    cp "$dir/summary.md" "$out/"
    tar czf "$out/gpu-check.tgz" --exclude-from="$dir/.gitignore" -C "$(dirname "$dir")" "$(basename "$dir")"
    if [ "$rc" -eq 3 ]; then  # the last lines of the output are what the device tool shows first
        echo "gpu_session: partial (budget). To continue it: untar gpu-check.tgz into benchmarks/results/," \
             "then bash tools/gpu_session.sh --resume benchmarks/results/$(basename "$dir") --budget MIN"
    fi
fi
exit "$rc"

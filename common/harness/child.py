"""One backend in a child process (common/harness/worker.py, or a launcher of its replicas):
started, its stderr shown live and kept, stopped on timeout or interrupt, its result read back."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import atomic, sysinfo
from common.harness import interrupts, launch
from common.harness.runfolder import REPO
from common.results import schema

STDERR_TAIL_LINES = 40

# glibc malloc settings for every backend's process and every bare loop (benchmarks/throughput.py):
# one allocator setting for all, as with the thread count. With glibc's defaults the heap is
# trimmed and large buffers unmapped after each step: TensorFlow's dcgan64 step behind
# Dataset.from_generator then took ~33,100 page faults (its spec run 6% slower, its bare loop not),
# and Chainer's and JAX's runs at mnist32 were ~10% slower, harness and bare alike
# (benchmarks/README.md, "Idiom cost"). The cost: memory once mapped stays with the process (peak
# RSS can read higher). A value exported by the user wins; other C libraries ignore the names.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4_000_000_000),
                 "MALLOC_TOP_PAD_": str(256 << 20)}


def process_env(threads, quiet: bool = True) -> dict[str, str]:
    """The environment a backend's process starts with: the repository importable, its thread
    count and the allocator settings (each unless exported), TensorFlow's chatter off if quiet."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    if quiet:  # frameworks' own start-up chatter stays out of the user's terminal
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name, value in ALLOCATOR_ENV.items():
        env.setdefault(name, value)
    return env


def run_child(label: str, config: dict, run_dir: Path, timeout: float | None, verbose: bool,
              environment: dict | None = None) -> tuple[dict, bool]:
    """Run one backend to its end under its label ('jax', 'jax@newest': backends/<label>/) in
    the interpreter of `environment` (environment.check's record; None: this one); returns its
    result, with its plain backend name and environment, and whether the run was interrupted."""
    name = label.partition("@")[0]
    python = (environment or {}).get("interpreter") or sys.executable
    out = run_dir / "backends" / schema.label_folder(label)
    out.mkdir(parents=True, exist_ok=True)
    config = dict(config, backend=name, out_dir=str(out))
    atomic.write_json(out / "config.json", config)
    env = process_env(config["options"]["threads"], quiet=not verbose)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    t0 = time.perf_counter()
    command = launch.worker_command(name, config["options"].get("devices", 1), str(out / "config.json"),
                                      config.get("nodes", 1), config.get("rdzv_endpoint"),
                                      config["options"].get("threads"), config.get("hostfile"), python)
    launcher = command[1:3] != ["-m", "common.harness.worker"]
    # A launcher and its replicas get their own process group: when it ends, none outlives it.
    # Its stdout joins the stderr pump: mpiexec reports a failed replica there.
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if launcher else None,
                            stderr=subprocess.STDOUT if launcher else subprocess.PIPE,
                            start_new_session=launcher)
    stream = proc.stdout if launcher else proc.stderr
    pump = threading.Thread(target=forward_stderr, args=(stream, tail, out / "stderr.log"),
                            daemon=True)
    pump.start()
    status = None
    try:
        if interrupts.process.count:  # a signal came while it started
            raise KeyboardInterrupt
        with interrupts.process.raising():  # the one place a signal stops the parent's work
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        status = "timeout"
        stop(proc)
    except KeyboardInterrupt:
        status = "interrupted"
        stop(proc)  # a terminal's Ctrl-C reached the child too; let it write its result
    if launcher:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any replica the launcher left behind
        except ProcessLookupError:
            pass
    pump.join(5)
    result = finish_child(name, out, proc, tail, status, time.perf_counter() - t0)
    result["process_env"] = sysinfo.measured_env(env)  # what it ran with, beyond the parent's own
    result["backend"] = name
    if environment is not None:
        result["environment"] = environment
    if launcher and not status and result["status"] in ("failed", "interrupted"):
        # A replica failed and the launcher stopped the rest: unless rank 0 failed first, say which
        # replica it was; rank 0's own error (a lost peer, a stop) follows from it.
        first = launch.first_failure(list(tail), out)
        if first and first[0] != 0:
            result.update(status="failed", reason=f"{first[1]}; the launcher stopped the other "
                          f"replicas (rank 0: {result['reason'][:200]})")
    if config.get("nodes", 1) > 1 and result["status"] == "failed" and (lost := launch.lost_host(list(tail))):
        result["reason"] = f"{lost} ({result['reason'][:200]})"
    # A child stopped by a signal of its own (kill -INT PID) stops the run as a Ctrl-C would.
    return result, status == "interrupted" or result["status"] == "interrupted"


def forward_stderr(stream, tail, log_path: Path) -> None:
    """Show the child's progress bar live, keep a tail for the result, and a full log file."""
    line = bytearray()
    with open(log_path, "wb") as log:
        while chunk := stream.read1(4096):  # whatever is there: tqdm's \r updates arrive live
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()
            log.write(chunk)
            for b in chunk:
                if b in (10, 13):  # \n or tqdm's \r
                    if line.strip():
                        tail.append(line.decode(errors="replace"))
                    line.clear()
                else:
                    line.append(b)
    if line.strip():
        tail.append(line.decode(errors="replace"))


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM (the worker writes its result), then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def finish_child(name, out: Path, proc, tail, status, seconds) -> dict:
    """The child's result.json, or what its exit says when it wrote none; the parent's view
    (timeout, interrupt) wins."""
    result_file = out / "result.json"
    result = None
    if result_file.exists():
        try:
            result = json.loads(result_file.read_text())
        except ValueError:
            result = None
    if result is None:  # the interpreter died before writing anything: say how
        code = proc.returncode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exited with status {code} without a result")
        result = {"backend": name, "status": "failed", "reason": f"the backend process {how}"}
    if status == "interrupted" and result["status"] == "interrupted" and result.get("reason"):
        pass  # the child's own reason says after how many iterations it stopped
    elif status:  # the parent's view wins: it stopped the child
        result["status"] = status
        result["reason"] = ("exceeded --timeout" if status == "timeout" else "interrupted by signal")
    result["process_seconds"] = seconds
    result["exit_code"] = proc.returncode
    if result["status"] not in ("ok", "skipped"):
        # lines of progress bars are noise in an error report
        result["stderr_tail"] = [l for l in tail if "it/s]" not in l and "s/it]" not in l][-20:]
    return result

"""The hosts' watchdog link, for a multi-host engine that does not notice a lost host itself
(MXNet's ps-lite kvstore: a worker waits for a peer's gradients forever, measured).

Node 0's worker listens at the --rdzv-endpoint (free again after the harness's meeting there,
common/harness/launch.py) and every other host's worker connects to it: a star of TCP links,
each host sending node 0 its rank and a few words of its own (`words`: the port its engine
listens at), node 0 answering every host alike with its `hello` (where the engine's service
listens; or made from every host's words and address, TensorFlow's cluster). Then every side
sends a beat each BEAT_S seconds. While a host is `armed` (from the link's start to the end of
its training), a peer whose link closes (a killed process, a lost machine, a crash) or stays
silent for `timeout` seconds (a stopped process, a lost network) ends this host's process at
once: one line on stderr, LOST_MARK and the reason naming the host, then exit status 1, since
the engine's wait cannot be interrupted from Python. A peer that ended its training says so first (`ended`),
so its leaving is no loss; node 0, whose process holds the engine's service, keeps it until
every peer has ended (`wait_for_peers`). Node 0 tells the others which host it lost before it
leaves. Only words cross, never a tensor.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable

BEAT_S = 1.0       # seconds between beats
EARLY_GRACE_S = 2.0  # a peer that ended early: the time this host gets to end too (a NaN both see)
LOST_MARK = "dcgan-bench host link: "  # the stderr line the harness reads (launch.lost_host)


class LinkError(Exception):
    """The link could not be made: one line naming the host and the fix."""


Hello = dict | Callable[[dict[int, dict]], dict]


def free_port() -> int:
    """A TCP port free on this host now (an engine's service binds it next)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class HostLink:
    """This host's end of the star. `hello` is node 0's answer (node 0 gives it, the others
    receive it in `self.hello`): its words, or a function of every other host's
    {rank: {"address": as node 0 sees it, **its words}} that makes them; `words` what this host
    tells node 0; `address` this host's address as node 0 reaches it."""

    def __init__(self, nodes: int, node_rank: int, endpoint: str, timeout: float, wait: float,
                 hello: Hello | None = None, on_lost: Callable[[str], None] | None = None,
                 words: dict | None = None):
        self.nodes, self.rank, self.timeout = nodes, node_rank, timeout
        self.words = dict(words or {})
        self.on_lost = on_lost or self.exit
        self.armed, self.closed = True, False
        self.cleanups: list[Callable[[], None]] = []  # run before an exit on a loss
        self.state: dict[int, str] = {}  # peer rank -> "on" | "ok" | "early: why" | "gone"
        self.lock = threading.Lock()
        self.files: dict[int, object] = {}  # each link's reader, made once (it buffers)
        host, port = endpoint.rsplit(":", 1)
        deadline = time.monotonic() + wait
        self.links = (self._accept((host, int(port)), hello, deadline, wait) if node_rank == 0
                      else self._connect((host, int(port)), deadline, wait, endpoint))
        self.address = host if node_rank == 0 else self.links[0].getsockname()[0]
        self.send_locks = {r: threading.Lock() for r in self.links}
        for r, conn in self.links.items():
            self.state[r] = "on"
            threading.Thread(target=self._read, args=(r, conn), daemon=True).start()
        threading.Thread(target=self._beat, daemon=True).start()

    # ----- making the link -----
    def _accept(self, address, hello, deadline, wait) -> dict[int, socket.socket]:
        links: dict[int, socket.socket] = {}
        peers: dict[int, dict] = {}
        with socket.create_server(address) as server:
            while len(links) < self.nodes - 1:
                server.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    conn, _ = server.accept()
                    conn.settimeout(30)
                    words = conn.makefile("rb")
                    said = json.loads(words.readline())
                    rank = said.pop("rank")
                except TimeoutError:
                    missing = [r for r in range(1, self.nodes) if r not in links]
                    raise LinkError(f"host(s) {', '.join(map(str, missing))} did not link to node 0 "
                                    f"at {address[0]}:{address[1]} within {wait:g} s after the "
                                    "hosts met (their worker failed before it; see its run "
                                    "folder)") from None
                except (OSError, ValueError, AttributeError, KeyError):
                    continue  # not one of ours
                if not isinstance(rank, int) or not 0 < rank < self.nodes or rank in links:
                    conn.close()
                    continue
                links[rank] = conn
                self.files[rank] = words
                peers[rank] = {"address": conn.getpeername()[0], **said}
        self.hello = (hello(peers) if callable(hello) else hello) or {}
        for conn in links.values():
            conn.sendall(json.dumps(self.hello).encode() + b"\n")
        return links

    def _connect(self, address, deadline, wait, endpoint) -> dict[int, socket.socket]:
        while True:
            try:
                conn = socket.create_connection(address, timeout=5)
                conn.sendall(json.dumps({**self.words, "rank": self.rank}).encode() + b"\n")
                conn.settimeout(max(1.0, deadline - time.monotonic()))
                words = conn.makefile("rb")
                line = words.readline()
                if line:
                    self.files[0] = words
                    break
                conn.close()  # node 0's meeting or a stale listener closed on us: again
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LinkError(f"node 0 did not link at {endpoint} within {wait:g} s after the "
                                "hosts met (its worker failed before it; see its run folder)")
            time.sleep(0.5)
        self.hello = json.loads(line)
        return {0: conn}

    # ----- beats and words -----
    def _send(self, rank: int, words: str) -> None:
        try:
            with self.send_locks[rank]:
                self.links[rank].sendall(words.encode() + b"\n")
        except OSError:
            pass  # the reader sees the closed link

    def _beat(self) -> None:
        while not self.closed:
            for r in self.links:
                self._send(r, "beat")
            time.sleep(BEAT_S)

    def _read(self, rank: int, conn: socket.socket) -> None:
        conn.settimeout(self.timeout)
        lines = self.files[rank]
        how = ""
        while not self.closed:
            try:
                line = lines.readline().decode(errors="replace").strip()
            except TimeoutError:
                how = f"no word within --host-timeout ({self.timeout:g} s)"
                break
            except (OSError, ValueError) as exc:  # ValueError: closed here meanwhile
                how = f"its link failed mid-run ({getattr(exc, 'strerror', None) or exc})"
                break
            if not line:
                how = "its link closed mid-run (its process ended)"
                break
            if line.startswith("end "):
                with self.lock:
                    self.state[rank] = "ok" if line == "end ok" else "early: " + line[4:]
                if line != "end ok":
                    threading.Thread(target=self._early, args=(rank, line[4:]), daemon=True).start()
            elif line.startswith("lost "):  # node 0 lost another host: its words
                self._lost(line[5:] + f" (as host 0 saw it; this is host {self.rank})")
        with self.lock:
            said, self.state[rank] = self.state[rank], "gone"
        # A peer that ended its training may leave; node 0 never while another host still trains
        # (its process holds the engine's service, which it keeps until every host has ended).
        # One that ended early is reported with its reason after the grace (_early).
        if said.startswith("early") or (said == "ok" and rank != 0):
            return
        if not self.closed:
            self._lost(f"lost host {rank} (--node-rank {rank}): {how}; this is host {self.rank}")

    def _early(self, rank: int, why: str) -> None:
        time.sleep(EARLY_GRACE_S)
        self._lost(f"host {rank} (--node-rank {rank}) ended its training early ({why[:200]}); "
                   f"this is host {self.rank}")

    def _lost(self, message: str) -> None:
        with self.lock:
            if not self.armed or self.closed:
                return
            self.armed = False
        if self.rank == 0:
            for r in self.links:
                self._send(r, "lost " + message.rsplit("; this is host", 1)[0])
        self.on_lost(message)

    def exit(self, message: str) -> None:
        """The default on a loss: say so, clean up, end this process (its engine cannot be
        interrupted)."""
        print(LOST_MARK + message, file=sys.stderr, flush=True)
        for cleanup in self.cleanups:
            cleanup()
        os._exit(1)

    def watch(self, name: str, process) -> None:
        """A child process (a subprocess.Popen) that must not end while this host is armed:
        its end is a loss (the engine's service on node 0)."""
        def poll():
            code = process.wait()
            self._lost(f"this host's {name} ended with status {code} mid-run; this is host {self.rank}")
        threading.Thread(target=poll, daemon=True).start()

    # ----- the end -----
    @contextlib.contextmanager
    def training(self):
        """Around this host's training loop: the others are told how it ended. An error in it
        may be the engine's collective failing on a peer that is gone: the link is given
        EARLY_GRACE_S to see that first, and then names the host (ending this process)."""
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):
                deadline = time.monotonic() + EARLY_GRACE_S
                while time.monotonic() < deadline and self.armed:
                    time.sleep(0.05)
            self.ended(False, f"{type(exc).__name__}: {exc}")
            raise
        self.ended(True)

    def leave(self, limit: float) -> None:
        """At this process's exit: the others told if its training never ended (it failed
        before), node 0's engine service kept until every other host has ended (at most
        `limit` s), the links closed."""
        if self.armed:
            self.ended(False, "its worker ended before its training did")
        if self.rank == 0:
            self.wait_for_peers(limit)
        self.close()

    def ended(self, ok: bool, how: str = "") -> None:
        """This host's training is over: tell the others (ok: every iteration done; else why
        not), and take no loss for one from here on."""
        with self.lock:
            self.armed = False
        for r in self.links:
            self._send(r, "end ok" if ok else f"end {how or 'failed'}".replace("\n", " "))

    def wait_for_peers(self, limit: float) -> None:
        """Node 0: until every other host has ended or gone, at most `limit` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                if all(s != "on" for s in self.state.values()):
                    return
            time.sleep(0.1)

    def close(self) -> None:
        """Close every link (the peers read its end at once: shut down, not only closed, as the
        readers still hold the sockets)."""
        self.closed = True
        for conn in self.links.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

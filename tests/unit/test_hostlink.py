"""The hosts' watchdog link (common/hostlink.py), in one process: hosts as threads on 127.0.0.1
with a free port; a loss is recorded instead of ending the process. Framework-free."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from common import hostlink
from common.harness import launch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _star(nodes: int, timeout: float = 10, hello=None, words=lambda rank: None):
    """Every host's HostLink, made concurrently: ({rank: link}, {rank: [losses]})."""
    endpoint, links, lost = f"127.0.0.1:{free_port()}", {}, {r: [] for r in range(nodes)}

    def one(rank):
        links[rank] = hostlink.HostLink(nodes, rank, endpoint, timeout, wait=20,
                                        hello=(hello or {"ps_port": 1234}) if rank == 0 else None,
                                        on_lost=lost[rank].append, words=words(rank))
    threads = [threading.Thread(target=one, args=(r,)) for r in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return links, lost


def _until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_node_0s_words_reach_every_host_with_the_address_node_0_sees():
    links, lost = _star(3)
    try:
        assert all(links[r].hello == {"ps_port": 1234} for r in range(3))
        assert links[1].address == links[2].address == "127.0.0.1"
    finally:
        # every host ends its training before any link closes, as a run does: links close in
        # whatever order, and one closed while a peer still trains is a loss (the next tests)
        for link in links.values():
            link.ended(True)
        for link in links.values():
            link.close()
    assert lost == {0: [], 1: [], 2: []}


def _end_and_close(links):
    for link in links.values():
        link.ended(True)
    for link in links.values():
        link.close()


def test_node_0_makes_its_words_from_every_hosts_words_and_address():
    """TensorFlow's cluster: each host's port (its words), gathered by node 0 with the address
    it sees the host at, and sent back to every host alike."""
    cluster = lambda peers: {"workers": [f"{peers[r]['address']}:{peers[r]['port']}" for r in sorted(peers)]}
    links, lost = _star(3, hello=cluster, words=lambda rank: {"port": 7000 + rank})
    try:
        assert all(links[r].hello == {"workers": ["127.0.0.1:7001", "127.0.0.1:7002"]} for r in range(3))
    finally:
        _end_and_close(links)
    assert lost == {0: [], 1: [], 2: []}


def test_an_error_in_training_gives_the_link_time_to_name_a_lost_host(monkeypatch):
    """An engine's collective may fail on a peer that is gone before the link reads the close:
    training() waits up to EARLY_GRACE_S, so the loss is named, not the engine's error; an error
    with every peer alive ends training early after that wait, and the peers are told why."""
    monkeypatch.setattr(hostlink, "EARLY_GRACE_S", 1.0)
    links, lost = _star(2)
    links[1].close()
    with pytest.raises(RuntimeError, match="collective failed"):
        with links[0].training():
            raise RuntimeError("collective failed")
    assert lost[0] and lost[0][0].startswith("lost host 1 (--node-rank 1)")
    links[0].close()
    links, lost = _star(2)
    t0 = time.monotonic()
    with pytest.raises(ValueError):
        with links[1].training():
            raise ValueError("bad batch")
    assert 0.9 < time.monotonic() - t0 < 5 and lost[1] == []
    assert _until(lambda: links[0].state[1] == "early: ValueError: bad batch")
    _end_and_close(links)


def test_a_host_that_leaves_mid_run_is_named_on_node_0_and_node_0_tells_the_others():
    links, lost = _star(3)
    links[2].close()  # as its process's end closes its socket
    assert _until(lambda: lost[0] and lost[1])
    assert lost[0] == [("lost host 2 (--node-rank 2): its link closed mid-run (its process ended); "
                        "this is host 0")]
    assert lost[1][0].startswith("lost host 2 (--node-rank 2): its link closed")
    assert lost[1][0].endswith("(as host 0 saw it; this is host 1)")
    for link in links.values():
        link.close()


def test_hosts_that_ended_their_training_leave_without_a_loss():
    links, lost = _star(2)
    links[1].ended(True)
    links[0].ended(True)
    assert _until(lambda: links[0].state[1] == "ok")
    links[0].wait_for_peers(5)
    links[1].close()
    links[0].close()
    time.sleep(0.5)
    assert lost == {0: [], 1: []}


def test_node_0_leaving_is_a_loss_until_this_host_has_ended_even_after_node_0_ended():
    """Node 0's process holds the engine's service: a host still training needs it."""
    links, lost = _star(2)
    links[0].ended(True)
    assert _until(lambda: links[1].state[0] == "ok")
    links[0].close()
    assert _until(lambda: lost[1])
    assert lost[1][0].startswith("lost host 0 (--node-rank 0): its link closed")
    links[1].close()


def test_a_host_that_ended_early_ends_the_others_after_the_grace(monkeypatch):
    monkeypatch.setattr(hostlink, "EARLY_GRACE_S", 0.2)
    links, lost = _star(2)
    links[1].ended(False, "Diverged: loss_D is nan at iteration 3")
    assert _until(lambda: lost[0])
    assert lost[0] == [("host 1 (--node-rank 1) ended its training early (Diverged: loss_D is nan "
                        "at iteration 3); this is host 0")]
    for link in links.values():
        link.close()


def test_a_silent_host_is_lost_after_the_timeout():
    """A peer that linked and then says nothing (a stopped process) is lost after `timeout`."""
    endpoint, lost, made = f"127.0.0.1:{free_port()}", [], {}
    node0 = threading.Thread(target=lambda: made.update(link=hostlink.HostLink(
        2, 0, endpoint, 1.0, wait=20, hello={}, on_lost=lost.append)))
    node0.start()
    host, port = endpoint.rsplit(":", 1)
    for _ in range(100):
        try:
            silent = socket.create_connection((host, int(port)), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
    silent.sendall(json.dumps({"rank": 1}).encode() + b"\n")
    node0.join(30)
    t0 = time.monotonic()
    assert _until(lambda: lost, 10)
    assert 0.9 < time.monotonic() - t0 < 5
    assert lost == ["lost host 1 (--node-rank 1): no word within --host-timeout (1 s); this is host 0"]
    silent.close()
    made["link"].close()


def test_a_host_that_never_links_is_one_line_within_the_wait():
    t0 = time.monotonic()
    with pytest.raises(hostlink.LinkError, match="host\\(s\\) 1 did not link to node 0") as exc:
        hostlink.HostLink(2, 0, f"127.0.0.1:{free_port()}", 10, wait=1, hello={})
    assert time.monotonic() - t0 < 5 and "\n" not in str(exc.value)
    with pytest.raises(hostlink.LinkError, match="node 0 did not link at"):
        hostlink.HostLink(2, 1, f"127.0.0.1:{free_port()}", 10, wait=1)


def test_the_harness_names_the_lost_host_from_the_links_last_words():
    line = "lost host 1 (--node-rank 1): its link closed mid-run (its process ended); this is host 0"
    assert launch.lost_host(["a step", hostlink.LOST_MARK + line]) == line

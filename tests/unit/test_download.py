"""Tests for common.data.download (verified mirror downloads) against a loopback HTTP server."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from common.data import download
from common.data.download import DownloadState, NetworkUnavailable, fetch_verified, md5_file
from common.errors import DataError


from tests.support.loopback import record_urlopen, refused_url

pytestmark = pytest.mark.usefixtures("isolated_env")


PAYLOAD = b"dcgan-bench test payload " * 100
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def payload(served):
    (served / "a.bin").write_bytes(PAYLOAD)
    (served / "b.bin").write_bytes(PAYLOAD)
    return PAYLOAD_MD5


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_md5_file_is_chunked_and_correct(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(PAYLOAD)
    assert md5_file(path, chunk_size=7) == md5_file(path) == PAYLOAD_MD5


def test_fetch_downloads_verifies_and_caches(tmp_path, server, payload):
    cache = tmp_path / "cache"
    state = DownloadState()
    path = fetch_verified("a.bin", payload, [server.url], cache, state=state)
    assert path == cache / "a.bin"
    assert path.read_bytes() == PAYLOAD
    assert cache_listing(cache) == ["a.bin"]  # no leftover temp files
    assert server.requests == ["/a.bin"]
    # Second call: served from cache, no request.
    assert fetch_verified("a.bin", payload, [server.url], cache, state=state) == path
    assert server.requests == ["/a.bin"]


def test_mirror_with_wrong_bytes_is_skipped(tmp_path, server, second_server, payload):
    server.mode = "corrupt"
    cache = tmp_path / "cache"
    path = fetch_verified("a.bin", payload, [server.url, second_server.url], cache, state=DownloadState())
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/a.bin"] and second_server.requests == ["/a.bin"]
    assert cache_listing(cache) == ["a.bin"]


def test_md5_mismatch_everywhere_is_an_error_and_caches_nothing(tmp_path, server, second_server, payload):
    server.mode = second_server.mode = "corrupt"
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        fetch_verified("a.bin", payload, [server.url, second_server.url], cache, state=DownloadState())
    assert not isinstance(info.value, NetworkUnavailable)  # bad bytes are not "offline"
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("could not fetch a.bin:")
    assert message.count("md5 mismatch") == 2
    assert server.url.rstrip("/") in message and second_server.url.rstrip("/") in message
    assert cache_listing(cache) == []


def test_http_404_is_not_network_unavailable(tmp_path, server, payload):
    server.mode = "404"
    state = DownloadState()
    with pytest.raises(DataError, match="HTTP 404") as info:
        fetch_verified("a.bin", payload, [server.url], tmp_path / "cache", state=state)
    assert not isinstance(info.value, NetworkUnavailable)
    assert state.dead_hosts == set()
    # A 404 mirror stays eligible for the next file.
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_verified("b.bin", payload, [server.url], tmp_path / "cache", state=state)
    assert server.requests == ["/a.bin", "/b.bin"]


def test_refused_host_is_remembered_as_dead(tmp_path, server, payload, monkeypatch):
    dead = refused_url()
    attempts = record_urlopen(monkeypatch)
    state = DownloadState()
    cache = tmp_path / "cache"
    fetch_verified("a.bin", payload, [dead, server.url], cache, state=state)
    fetch_verified("b.bin", payload, [dead, server.url], cache, state=state)
    assert state.dead_hosts == {dead.rstrip("/")}
    assert attempts == [dead + "a.bin", server.url + "a.bin", server.url + "b.bin"]
    assert server.requests == ["/a.bin", "/b.bin"]


def test_timed_out_host_is_not_retried(tmp_path, server, blackhole, payload):
    state = DownloadState()
    cache = tmp_path / "cache"
    for name in ("a.bin", "b.bin"):
        fetch_verified(name, payload, [blackhole.url, server.url], cache, timeout=0.3, state=state)
    assert len(blackhole.connections) == 1
    assert server.requests == ["/a.bin", "/b.bin"]


def test_all_mirrors_dead_raises_network_unavailable_without_retrying(tmp_path, payload, monkeypatch):
    dead1, dead2 = refused_url(), refused_url()
    attempts = record_urlopen(monkeypatch)
    state = DownloadState()
    with pytest.raises(NetworkUnavailable) as info:
        fetch_verified("a.bin", payload, [dead1, dead2], tmp_path / "cache", state=state)
    assert "connection refused" in str(info.value) and "\n" not in str(info.value)
    assert len(attempts) == 2
    with pytest.raises(NetworkUnavailable, match="unreachable earlier"):
        fetch_verified("b.bin", payload, [dead1, dead2], tmp_path / "cache", state=state)
    assert len(attempts) == 2  # nothing tried the second time
    assert cache_listing(tmp_path / "cache") == []


def test_default_state_is_used_when_none_given(tmp_path, payload):
    dead = refused_url()
    with pytest.raises(NetworkUnavailable):
        fetch_verified("a.bin", payload, [dead], tmp_path / "cache")
    assert download.DEFAULT_STATE.is_dead(dead + "whatever")


def test_state_distinguishes_ports():
    state = DownloadState()
    state.mark_dead("http://127.0.0.1:1234/x")
    assert state.is_dead("http://127.0.0.1:1234/y")
    assert not state.is_dead("http://127.0.0.1:1235/x")
    assert not state.is_dead("https://127.0.0.1:1234/x")


def test_corrupt_cache_file_is_replaced(tmp_path, server, payload, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin").write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="dcgan_bench"):
        path = fetch_verified("a.bin", payload, [server.url], cache, state=DownloadState())
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/a.bin"]
    assert any("corrupt" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_corrupt_cache_file_is_deleted_even_when_refetch_fails(tmp_path, payload):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin").write_bytes(b"garbage")
    with pytest.raises(NetworkUnavailable):
        fetch_verified("a.bin", payload, [refused_url()], cache, state=DownloadState())
    assert cache_listing(cache) == []


def test_interrupt_mid_download_leaves_no_temp_file(tmp_path, server, payload, monkeypatch):
    def interrupted(url, dest, expected_md5, timeout):
        dest.write(PAYLOAD[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "download_to", interrupted)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        fetch_verified("a.bin", payload, [server.url], cache, state=DownloadState())
    assert cache_listing(cache) == []


def test_no_mirrors_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no mirrors"):
        fetch_verified("a.bin", PAYLOAD_MD5, [], tmp_path / "cache", state=DownloadState())

"""Verified, cached downloads from a list of mirrors.

Nothing is ever cached unverified: bytes go to a temp file next to the target, their md5 is
checked, and only then are they moved into place with os.replace (atomic)."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from common.errors import DataError

log = logging.getLogger("dcgan_bench")

CHUNK = 1 << 20


class NetworkUnavailable(DataError):
    """No mirror could even be connected to (as opposed to serving bad or missing files)."""


class DownloadState:
    """Remembers hosts that failed at the connection level, so later files skip them.

    Without this, each of the four MNIST files would wait out every mirror's timeout again."""

    def __init__(self):
        self.dead_hosts: set[str] = set()

    @staticmethod
    def host_of(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def is_dead(self, url: str) -> bool:
        return self.host_of(url) in self.dead_hosts

    def mark_dead(self, url: str) -> None:
        self.dead_hosts.add(self.host_of(url))

    def reset(self) -> None:
        self.dead_hosts.clear()


# One per process: a run that found the network down does not probe it again per file.
DEFAULT_STATE = DownloadState()


def file_digest(path, algorithm: str = "md5", chunk_size: int = CHUNK) -> str:
    """Hex digest of a file read in chunks (md5 for the published dataset checksums, sha256 for
    the files this project pins and writes itself)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def mirror_list(explicit, env_var: str, defaults) -> list[str]:
    """The explicit list, else $env_var (comma-separated), else the defaults."""
    if explicit is not None:
        return list(explicit)
    env = os.environ.get(env_var)
    if env:
        return [m.strip() for m in env.split(",") if m.strip()]
    return list(defaults)


def md5_file(path, chunk_size: int = CHUNK) -> str:
    return file_digest(path, "md5", chunk_size)


class _MirrorFailure(Exception):
    def __init__(self, reason: str, network: bool):
        super().__init__(reason)
        self.reason, self.network = reason, network


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())  # keep the report on one line


def download_to(url: str, dest, expected_md5: str, timeout: float) -> None:
    """Stream url into the open file dest; raise _MirrorFailure on any problem."""
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(CHUNK):
                digest.update(block)
                dest.write(block)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the open response
        raise _MirrorFailure(f"HTTP {exc.code}", network=False) from exc
    except urllib.error.URLError as exc:
        # URLError wraps socket-level failures: DNS, refused, unreachable, timeout, TLS.
        if isinstance(exc.reason, OSError):
            raise _MirrorFailure(_describe_os_error(exc.reason), network=True) from exc
        raise _MirrorFailure(" ".join(str(exc.reason).split()), network=False) from exc
    except http.client.HTTPException as exc:
        raise _MirrorFailure(f"bad HTTP response ({type(exc).__name__})", network=False) from exc
    except OSError as exc:  # timeout or reset mid-transfer
        raise _MirrorFailure(_describe_os_error(exc), network=True) from exc
    except ValueError as exc:
        raise _MirrorFailure(f"invalid url ({exc})", network=False) from exc
    got = digest.hexdigest()
    if got != expected_md5:
        raise _MirrorFailure(f"md5 mismatch (got {got}, expected {expected_md5})", network=False)


def fetch_verified(filename: str, md5: str, mirrors: list[str], cache_dir: Path, *,
                   timeout: float = 5.0, state: DownloadState | None = None) -> Path:
    """Return cache_dir/filename with the given md5, downloading it from the first good mirror.

    Raises NetworkUnavailable when every mirror failed to connect (now or earlier in this
    run), DataError when at least one answered but none served the right bytes."""
    state = DEFAULT_STATE if state is None else state
    cache_dir = Path(cache_dir)
    target = cache_dir / filename
    if target.is_file():
        got = md5_file(target)
        if got == md5:
            return target
        log.warning("%s: cached file is corrupt (md5 %s, expected %s); deleting and re-downloading",
                    target, got, md5)
        target.unlink()
    if not mirrors:
        raise DataError(f"could not fetch {filename}: no mirrors given; pass mirrors or --data-dir")
    bases = [m.rstrip("/") for m in mirrors]
    urls = [b + "/" + filename for b in bases]
    if all(state.is_dead(u) for u in urls):
        hosts = ", ".join(dict.fromkeys(state.host_of(u) for u in urls))
        raise NetworkUnavailable(f"could not fetch {filename}: all mirrors unreachable earlier in this run ({hosts})")

    cache_dir.mkdir(parents=True, exist_ok=True)
    failures: list[_MirrorFailure] = []
    reports: list[str] = []
    for base, url in zip(bases, urls):
        if state.is_dead(url):
            failures.append(_MirrorFailure("unreachable earlier in this run", network=True))
            reports.append(f"{base}: {failures[-1].reason}")
            continue
        log.info("downloading %s", url)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as tmp:
                download_to(url, tmp, md5, timeout)
            os.replace(tmp_name, target)
            return target
        except _MirrorFailure as failure:
            if failure.network:
                state.mark_dead(url)
            log.info("%s: %s", url, failure.reason)
            failures.append(failure)
            reports.append(f"{base}: {failure.reason}")
        finally:
            # Covers every exit, KeyboardInterrupt included; after os.replace it is a no-op.
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
    message = f"could not fetch {filename}: " + "; ".join(reports)
    if all(f.network for f in failures):
        raise NetworkUnavailable(message + "; check the network or pass --data-dir with the files")
    raise DataError(message + "; check the mirrors or pass --data-dir with good files")

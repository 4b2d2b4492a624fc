"""Reader and writer for the idx format of the MNIST files (LeCun's "idx3-ubyte" etc.).

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the values in C order (big-endian for multi-byte dtypes)."""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from common.errors import DataError

# idx dtype codes; multi-byte values are big-endian on disk.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_BY_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

_FIX = "delete it or pass --data-dir with good files"


def parse_idx(data: bytes, *, name: str = "idx") -> np.ndarray:
    """Decode raw (already gunzipped) idx bytes; anything malformed raises DataError."""
    data = bytes(data)
    if len(data) < 4:
        raise DataError(f"{name}: truncated idx file (only {len(data)} bytes, no header); {_FIX}")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: not an idx file (magic starts with {data[:2].hex()}, expected 0000); "
                        f"if it is gzipped, name it .gz; otherwise {_FIX}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unsupported idx dtype code 0x{code:02x} (known: {known}); {_FIX}")
    if ndim == 0:
        raise DataError(f"{name}: idx file declares 0 dimensions; {_FIX}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated idx file (header needs {header} bytes, got {len(data)}); {_FIX}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    # Python ints: a hostile header cannot overflow this or make us allocate anything.
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) < expected:
        raise DataError(f"{name}: truncated idx file (expected {expected} bytes, got {len(data)}); {_FIX}")
    if len(data) > expected:
        raise DataError(f"{name}: trailing bytes after idx data (expected {expected} bytes, got {len(data)}); {_FIX}")
    try:
        values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    except ValueError:  # an empty array whose other dims overflow numpy's size (found by fuzzing)
        raise DataError(f"{name}: idx dimensions {dims} cannot form an array; {_FIX}") from None
    # astype copies: the result is writable and in native byte order.
    return values.astype(dtype.newbyteorder("="))


def write_idx(array) -> bytes:
    """Encode an array as idx bytes (inverse of parse_idx; used for fixtures)."""
    array = np.asarray(array)
    code = _CODE_BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write dtype {array.dtype} with {array.ndim} dims as idx; "
                        "use uint8/int8/int16/int32/float32/float64 with 1-255 dims")
    if any(d >= 2 ** 32 for d in array.shape):
        raise DataError(f"cannot write shape {array.shape} as idx; every dimension must be < 2**32")
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def read_idx_file(path) -> np.ndarray:
    """Read an idx file from disk, gunzipping it first when the name ends in .gz."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc}); check the path or pass --data-dir") from exc
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path.name}: corrupt gzip data ({exc}); {_FIX}") from exc
    return parse_idx(raw, name=path.name)

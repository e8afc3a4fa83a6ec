"""Reading TFRecord files (serialized ``tf.train.Example`` inputs) without TensorFlow.

A TFRecord file is a sequence of frames::

    uint64 length | uint32 masked_crc32c(length) | bytes data[length] | uint32 masked_crc32c(data)

(little-endian). The records are kept as opaque bytes: a classify/regress signature parses
them itself, and the golden stores exactly the bytes that were fed. Reading here rather than
through ``tf.data`` keeps the error for a bad file one precise line (which record, which byte
offset) instead of a TensorFlow op failure raised later, mid-run.

GZIP-compressed files (``TFRecordOptions(compression_type="GZIP")``) are recognised by their
magic bytes and ZLIB ones by a failed first frame that inflates cleanly, so users need not
say which they have.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from snapshot_tool.errors import InputsError

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"


def _crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``: the checksum TFRecord frames carry.

    Pure Python, since the standard library only has zlib's CRC-32. Input files of a golden
    are small (they are copied into the golden), so a byte loop is fast enough.
    """
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: plain CRCs of data containing CRCs are weak, hence the mask."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def is_tfrecord_path(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(TFRECORD_SUFFIXES) or name.endswith(
        tuple(s + ".gz" for s in TFRECORD_SUFFIXES))


def _frames(data: bytes, path: Path) -> list[bytes]:
    records: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < _HEADER.size:
            raise InputsError(f"{path} is truncated: {end - pos} stray bytes after record "
                              f"{len(records)} (byte offset {pos}); it is not a complete "
                              "TFRecord file")
        length, length_crc = _HEADER.unpack_from(data, pos)
        if masked_crc32c(data[pos:pos + 8]) != length_crc:
            raise InputsError(f"{path} is not a TFRecord file or is corrupt: record "
                              f"{len(records)} at byte offset {pos} has a bad length checksum")
        start = pos + _HEADER.size
        stop = start + length
        if stop + _FOOTER.size > end:
            raise InputsError(f"{path} is truncated: record {len(records)} at byte offset "
                              f"{pos} declares {length} bytes but the file ends first")
        record = data[start:stop]
        (data_crc,) = _FOOTER.unpack_from(data, stop)
        if masked_crc32c(record) != data_crc:
            raise InputsError(f"{path} is corrupt: record {len(records)} at byte offset "
                              f"{pos} fails its data checksum")
        records.append(record)
        pos = stop + _FOOTER.size
    return records


def read_tfrecord(path: str | Path) -> np.ndarray:
    """Every record of a TFRecord file as a 1-D object array of ``bytes``, in file order.

    Raises :class:`InputsError` for a missing, unreadable, corrupt, truncated or empty file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputsError(f"inputs file {str(p)!r} not found") from None
    except OSError as exc:
        raise InputsError(f"cannot read inputs file {p}: {exc.strerror or exc}") from None
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputsError(f"{p} looks GZIP-compressed but does not decompress: "
                              f"{exc}") from None
    try:
        records = _frames(data, p)
    except InputsError as plain_error:
        # A ZLIB-compressed TFRecord has no magic number of its own; try it only when the
        # plain reading fails, so a plain file is never misread.
        try:
            inflated = zlib.decompress(data)
        except zlib.error:
            raise plain_error from None
        records = _frames(inflated, p)
    if not records:
        raise InputsError(f"{p} holds no records; write tf.train.Example protos into it, "
                          "e.g. with tf.io.TFRecordWriter")
    out = np.empty(len(records), dtype=object)
    out[:] = records
    return out

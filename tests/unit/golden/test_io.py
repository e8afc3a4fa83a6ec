from __future__ import annotations

import os
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest

from snapshot_tool.errors import GoldenError
from snapshot_tool.golden.describe import describe_golden
from snapshot_tool.golden.io import (
    COMPRESSION,
    read_golden,
    tensor_sha256,
    verify_golden,
    write_golden,
)
from snapshot_tool.golden.schema import SignatureGolden

ARRAYS = {
    "f16": np.arange(6, dtype=np.float16).reshape(2, 3) / 7,
    "bf16": (np.arange(4, dtype=np.float32) / 3).astype(ml_dtypes.bfloat16),
    "f64": np.random.default_rng(0).normal(size=(3, 2, 2)),
    "i8": np.array([-128, 0, 127], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "i64": np.array([2**62, -1], np.int64),
    "b": np.array([True, False, True]),
    "s": np.array([b"caf\xc3\xa9", b"", b"\x00bin"], dtype=object),
    "scalar": np.float32(3.5).reshape(()),
    "empty": np.zeros((0, 4), np.float32),
}


def _write(path: Path, force: bool = False) -> Path:
    sg = SignatureGolden("serving_default", {"x": ARRAYS["f64"]}, dict(ARRAYS),
                         {"f16": {"batched": True}})
    return write_golden(path, {"signature": "serving_default", "batch_size": 2},
                        {"serving_default": sg}, force=force)


def test_round_trip_is_lossless_for_every_dtype(tmp_path: Path) -> None:
    g = read_golden(_write(tmp_path / "g.h5"))
    out = g.signatures["serving_default"].outputs
    for name, arr in ARRAYS.items():
        assert out[name].dtype == arr.dtype, name
        assert out[name].shape == arr.shape, name
        assert tensor_sha256(out[name]) == tensor_sha256(arr), name
    assert g.signatures["serving_default"].output_attrs["f16"]["batched"]
    with h5py.File(tmp_path / "g.h5") as f:
        assert f["outputs/f16"].dtype == np.float16  # kept, not widened
        # Compressed with the golden's filter, in chunks of whole samples.
        assert f["outputs/f64"].compression == COMPRESSION["compression"]
        assert f["outputs/f64"].shuffle
        assert f["outputs/f64"].chunks[1:] == f["outputs/f64"].shape[1:]
        assert f["outputs/bf16"].attrs["dtype"] == "bfloat16"


def test_hash_covers_shape_and_dtype() -> None:
    a = np.arange(6, dtype=np.float32)
    assert tensor_sha256(a) != tensor_sha256(a.reshape(2, 3))
    assert tensor_sha256(a) != tensor_sha256(a.view(np.int32))


def test_refuses_overwrite_without_force(tmp_path: Path) -> None:
    p = _write(tmp_path / "g.h5")
    before = p.read_bytes()
    with pytest.raises(GoldenError, match="already exists"):
        _write(p)
    assert p.read_bytes() == before
    _write(p, force=True)


def test_interrupted_write_leaves_old_golden(tmp_path: Path) -> None:
    p = _write(tmp_path / "g.h5")
    before = p.read_bytes()
    bad = SignatureGolden("s", {"x": np.zeros(2)}, {"y": np.array([object()], dtype=object)})
    with pytest.raises(TypeError):
        write_golden(p, {}, {"s": bad}, force=True)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["g.h5"]


def test_multi_signature_layout(tmp_path: Path) -> None:
    sigs = {n: SignatureGolden(n, {"x": np.ones(2)}, {"y": np.ones(2) * i})
            for i, n in enumerate(("a", "b"))}
    write_golden(tmp_path / "m.h5", {"signature": "all"}, sigs)
    g = read_golden(tmp_path / "m.h5")
    assert set(g.signatures) == {"a", "b"}
    assert describe_golden(tmp_path / "m.h5")["signatures"]["b"]["outputs"][0]["name"] == "y"


def test_verify_catches_tampering_and_virtual_datasets(tmp_path: Path) -> None:
    p = _write(tmp_path / "g.h5")
    verify_golden(p)
    with h5py.File(p, "r+") as f:
        f["inputs/x"][0, 0, 0] = 42.0
    with pytest.raises(GoldenError, match="inputs/x fails its sha256"):
        verify_golden(p)
    p2 = _write(tmp_path / "v.h5")
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["d"] = np.arange(3.0)
    layout = h5py.VirtualLayout(shape=(3,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "d", shape=(3,))
    with h5py.File(p2, "r+") as f:
        f["outputs"].create_virtual_dataset("virt", layout)
    with pytest.raises(GoldenError, match="virtual dataset"):
        verify_golden(p2)


def test_written_golden_gets_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = _write(tmp_path / "g.h5")
        assert p.stat().st_mode & 0o777 == 0o644
        p.chmod(0o640)
        _write(p, force=True)
        assert p.stat().st_mode & 0o777 == 0o640  # a replaced golden keeps its mode
    finally:
        os.umask(old)


def test_verify_streams_in_blocks_with_the_same_digest(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import snapshot_tool.golden.validate as validate_mod
    from snapshot_tool.golden.io import verify_unbounded

    p = _write(tmp_path / "g.h5")
    # In this process (no child), so the patched block size is the one used.
    monkeypatch.setattr(validate_mod, "STREAM_BYTES", 7)  # one row per block
    found = verify_unbounded(p)
    assert (found.tensors, found.version) == (len(ARRAYS) + 1, 2)
    with h5py.File(p, "r+") as f:
        # one byte of one string element (NUL-holding strings are stored as byte arrays)
        f["outputs/s"][2] = np.frombuffer(b"\x00bim", dtype=np.uint8)
    with pytest.raises(GoldenError, match="outputs/s fails its sha256"):
        verify_unbounded(p)


@pytest.mark.parametrize("damage, message", [
    (lambda f: f["outputs/f16"].attrs.__delitem__("sha256"), "outputs/f16 has no sha256"),
    (lambda f: f.attrs.__setitem__("batch_size", 0), "batch_size of / is 0"),
    (lambda f: f.attrs.__setitem__("batch_size", True), "batch_size of / is True"),
    (lambda f: f.attrs.__setitem__("seed", -1), "seed of / is -1"),
])
def test_readers_refuse_through_the_one_validation(tmp_path: Path, damage: object,
                                                   message: str) -> None:
    """A tensor without its checksum or a malformed root number is refused by
    verify_golden, which both readers run first (its content digest recomputed here, so
    only the rule under test can catch it): neither reader needs a check of its own."""
    from snapshot_tool.golden.digest import content_digest
    from snapshot_tool.golden.stream import open_stored

    p = _write(tmp_path / "g.h5")
    with h5py.File(p, "r+") as f:
        damage(f)  # type: ignore[operator]
        f.attrs["content_digest"] = content_digest(f)
    for read in (verify_golden, read_golden, lambda g: open_stored(g).__enter__(),
                 lambda g: open_stored(g, defer_tensors=True).__enter__()):
        with pytest.raises(GoldenError, match=message):
            read(p)


def test_a_stop_inside_h5pys_close_leaves_no_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM landing inside h5py's File.close leaves the HDF5 file open until the File
    object is freed, after the temp file was closed: HDF5's flush on the way printed
    "Exception ignored ... I/O operation on closed file" with a traceback."""
    import gc
    import sys

    from snapshot_tool.golden import io as golden_io

    dropped: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: dropped.append(args.exc_value))
    real_close = h5py.File.close

    def interrupted(self: h5py.File) -> None:
        raise KeyboardInterrupt

    tmp = tmp_path / ".g.h5.tmp"
    tmp.write_bytes(b"")
    monkeypatch.setattr(h5py.File, "close", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with golden_io._open_for_write(tmp, tmp_path / "g.h5", None) as f:
            f.create_dataset("x", data=np.zeros(100))
    monkeypatch.setattr(h5py.File, "close", real_close)
    del f
    gc.collect()
    assert dropped == []


def test_goldens_written_from_several_threads_at_once_each_take_their_compression_trial(
        tmp_path: Path) -> None:
    # A Beam runner's worker threads (direct_running_mode=multi_threading) write shard
    # goldens at once: their tensors' compression trials must not share an HDF5 file name,
    # which HDF5 refuses to create while another thread has it open.
    from concurrent.futures import ThreadPoolExecutor

    noise = np.random.default_rng(3).standard_normal((70_000, 4), dtype=np.float32)  # 1.1 MB
    ids = np.random.default_rng(4).integers(0, 9, (70_000, 4)).astype(np.int32)

    def write(i: int) -> None:
        sg = SignatureGolden("serving_default", {"x": noise}, {"ids": ids, "y": noise})
        for j in range(4):
            write_golden(tmp_path / f"g{i}_{j}.h5", {"signature": "serving_default"},
                         {"serving_default": sg})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    for i in range(4):
        sig = read_golden(tmp_path / f"g{i}_3.h5").signatures["serving_default"]
        assert np.array_equal(sig.outputs["ids"], ids) and np.array_equal(sig.inputs["x"], noise)

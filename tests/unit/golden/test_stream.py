"""Streamed writing and reading of a golden's tensors (snapshot_tool.golden.stream)."""

from __future__ import annotations

from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest

from snapshot_tool.errors import GoldenError
from snapshot_tool.golden.io import (
    CHUNK_BYTES,
    golden_writer,
    open_golden,
    tensor_sha256,
    write_root_attrs,
)
from snapshot_tool.golden.stream import (
    StoredTensor,
    StreamCheck,
    TensorAppender,
    open_stored,
    row_block,
)


def _write(path: Path, arr: np.ndarray, batch: int) -> None:
    with golden_writer(path, force=True) as f:
        write_root_attrs(f, {"signature": "serving_default"})
        f.create_group("inputs")
        app = TensorAppender(f.create_group("outputs"), "out", arr.shape[0])
        for a in range(0, arr.shape[0], batch):
            app.append(arr[a:a + batch])
        app.finish({"batched": True})


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "bfloat16", "string"])
def test_appended_batches_equal_the_whole_tensor_and_its_digest(tmp_path: Path,
                                                                 dtype: str) -> None:
    rng = np.random.default_rng(0)
    if dtype == "string":
        arr = np.array([b"a\0b", b"cd"] * 500, dtype=object).reshape(1000, 1)
    elif dtype == "bfloat16":
        arr = rng.standard_normal((1000, 3)).astype(ml_dtypes.bfloat16)
    else:
        arr = (rng.standard_normal((1000, 3)) * 100).astype(dtype)
    path = tmp_path / "g.h5"
    _write(path, arr, batch=37)  # batches that straddle every chunk boundary
    with open_stored(path) as g:
        t = g.signatures["serving_default"].outputs["out"]
        back = t.read()
        assert t.label == ("string" if dtype == "string" else dtype)
        assert np.array_equal(back, arr)
        assert t.ds.attrs["sha256"] == tensor_sha256(arr)
        check = StreamCheck(t, path)
        for a in range(0, 1000, 300):
            check.feed(t.read(a, a + 300), a)
        check.check()


def test_numeric_chunks_run_along_the_sample_axis_and_are_readable_by_plain_h5py(
        tmp_path: Path) -> None:
    arr = np.arange(200_000 * 4, dtype=np.float32).reshape(200_000, 4)
    _write(tmp_path / "g.h5", arr, batch=1024)
    with h5py.File(tmp_path / "g.h5", "r") as f:
        ds = f["outputs/out"]
        assert ds.chunks == (CHUNK_BYTES // 16, 4)
        assert ds.compression == "lzf" and ds.shuffle
        assert np.array_equal(ds[()], arr)


def _write_many(path: Path, arrays: dict[str, np.ndarray], batch: int) -> None:
    with golden_writer(path, force=True) as f:
        write_root_attrs(f, {"signature": "serving_default"})
        f.create_group("inputs")
        out = f.create_group("outputs")
        for name, arr in arrays.items():
            app = TensorAppender(out, name, arr.shape[0])
            for a in range(0, arr.shape[0], batch):
                app.append(arr[a:a + batch])
            app.finish({"batched": True})


def test_compression_is_kept_where_it_pays_and_large_noise_is_stored_raw(
        tmp_path: Path) -> None:
    """shuffle + lzf shrinks random floats by under 10 %, ids by about half: a large tensor
    of the first kind is stored contiguous and uncompressed, one of the second chunked and
    compressed, a small one compressed as before; plain h5py reads all three, and the
    file is no larger than the raw arrays (what an .npz of them holds)."""
    rng = np.random.default_rng(0)
    arrays = {"noise": rng.standard_normal((100_000, 4), dtype=np.float32),  # 1.6 MB
              "ids": rng.integers(0, 100, (100_000, 4)).astype(np.int32),
              "small": rng.standard_normal((1000, 4), dtype=np.float32)}
    path = tmp_path / "g.h5"
    _write_many(path, arrays, batch=1000)
    with h5py.File(path, "r") as f:
        out = f["outputs"]
        assert out["noise"].chunks is None and out["noise"].compression is None
        assert out["ids"].chunks is not None and out["ids"].compression == "lzf"
        assert out["small"].compression == "lzf"
        for name, arr in arrays.items():
            assert np.array_equal(out[name][()], arr), name
    assert path.stat().st_size < sum(a.nbytes for a in arrays.values())


def test_streamed_batches_of_a_few_rows_are_judged_on_a_whole_chunk(tmp_path: Path) -> None:
    # ReLU activations shrink by ~20 % per chunk, but 4 rows of them (record's batches can
    # be that short) by nothing: lzf finds no repeats that soon. The choice to compress is
    # made on the first chunk, as for a tensor written whole, not on the first batch.
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.standard_normal((100_000, 4), dtype=np.float32), 0)  # 1.6 MB
    path = tmp_path / "g.h5"
    _write_many(path, {"relu": relu}, batch=4)
    with h5py.File(path, "r") as f:
        ds = f["outputs/relu"]
        assert ds.compression == "lzf" and ds.id.get_storage_size() < 0.9 * relu.nbytes
        assert np.array_equal(ds[()], relu)


def test_a_raw_tensor_streams_in_bounded_blocks_and_its_damage_is_caught(
        tmp_path: Path) -> None:
    # A contiguous tensor has no chunks to align to: blocks stay a few MB, its contents are
    # left to the streaming reader like a chunked tensor's, and its checksum still guards.
    arr = np.random.default_rng(1).standard_normal((300_000, 4), dtype=np.float32)
    path = tmp_path / "g.h5"
    _write(path, arr, batch=1000)
    with open_stored(path, defer_tensors=True) as g:
        t = g.signatures["serving_default"].outputs["out"]
        assert t.ds.chunks is None and g.deferred == {"/outputs/out"}
        block = row_block({"out": t}, 1000)
        assert block % 1000 == 0 and block * 16 <= 16 << 20 and block < arr.shape[0]
        check = StreamCheck(t, path)
        for a in range(0, arr.shape[0], block):
            check.feed(t.read(a, a + block), a)
        check.check()
    with h5py.File(path, "r+") as f:
        f["outputs/out"][250_000, 3] = 7.0
    with open_stored(path, defer_tensors=True) as g, pytest.raises(GoldenError, match="sha256"):
        g.check_deferred(set())


def test_raw_rows_larger_than_a_write_are_written_one_at_a_time(tmp_path: Path) -> None:
    # 2 MB rows of noise: stored raw, and each row goes to disk as it comes (the writer
    # never holds several such rows), with the whole tensor's digest.
    rows = np.random.default_rng(2).standard_normal((6, 512, 1024), dtype=np.float32)
    with golden_writer(tmp_path / "g.h5", force=True) as f:
        app = TensorAppender(f, "out", rows.shape[0])
        for i in range(rows.shape[0]):
            app.append(rows[i:i + 1])
            assert app._pending_rows <= 1
        app.finish()
        assert f["out"].chunks is None
        assert f["out"].attrs["sha256"] == tensor_sha256(rows)
        assert np.array_equal(f["out"][()], rows)


def test_a_changed_value_fails_the_streamed_checksum(tmp_path: Path) -> None:
    arr = np.ones((500, 2), dtype=np.float32)
    path = tmp_path / "g.h5"
    _write(path, arr, batch=64)
    with h5py.File(path, "r+") as f:
        f["outputs/out"][123, 1] = 2.0
    # Refused by the bounded verification that opens every read, and by the checksum
    # computed on the streamed rows themselves.
    with pytest.raises(GoldenError, match="sha256"), open_stored(path):
        pass
    with open_golden(path) as f:
        ds = f["outputs/out"]
        t = StoredTensor("/outputs/out", ds, "float32", tuple(ds.shape), path)
        check = StreamCheck(t, path)
        check.feed(t.read(0, 500), 0)
        with pytest.raises(GoldenError, match="sha256"):
            check.check()


def test_rows_must_add_up(tmp_path: Path) -> None:
    with golden_writer(tmp_path / "g.h5", force=True) as f:
        app = TensorAppender(f, "out", 10)
        app.append(np.zeros((4, 2)))
        with pytest.raises(ValueError, match="4 of 10"):
            app.finish()
        with pytest.raises(ValueError, match="continue"):
            app.append(np.zeros((4, 3)))
        with pytest.raises(ValueError, match="more than"):
            app.append(np.zeros((7, 2)))


def test_read_blocks_are_whole_batches_and_whole_chunks(tmp_path: Path) -> None:
    arr = np.zeros((100_000, 16), dtype=np.float32)
    _write(tmp_path / "g.h5", arr, batch=1000)
    with open_stored(tmp_path / "g.h5") as g:
        t = g.signatures["serving_default"].outputs["out"]
        for batch in (1000, 1024, 64, 3):
            block = row_block({"out": t}, batch)
            assert block % batch == 0
            assert block * 64 <= 16 << 20  # a few MB, whatever the golden's size
            if t.chunk_rows % batch == 0:
                assert block % t.chunk_rows == 0


def test_deferred_tensors_are_hashed_by_the_reader_before_it_reports(tmp_path: Path) -> None:
    # compare's streaming reader asks the bounded validation to leave the inputs' and
    # outputs' contents to it: open_stored passes a changed value, and the reader's
    # checksum (streamed, or check_deferred for a tensor it never streamed) refuses it.
    arr = np.ones((500, 2), dtype=np.float32)
    path = tmp_path / "g.h5"
    _write(path, arr, batch=64)
    with open_stored(path, defer_tensors=True) as g:
        assert g.deferred == {"/outputs/out"}
        g.check_deferred(set())  # intact: hashed here, and it matches
    with h5py.File(path, "r+") as f:
        f["outputs/out"][123, 1] = 2.0
    with open_stored(path, defer_tensors=True) as g:
        with pytest.raises(GoldenError, match="sha256"):
            g.check_deferred(set())
        t = g.signatures["serving_default"].outputs["out"]
        check = StreamCheck(t, path)
        check.feed(t.read(0, 500), 0)
        with pytest.raises(GoldenError, match="sha256"):
            check.check()


def test_a_tensor_under_another_filter_is_hashed_in_the_bounded_child(tmp_path: Path) -> None:
    # scale-offset's decoder is not among the ones known to stop on damaged data, so its
    # tensor is read under the child's time bound as before, never first by the reader.
    arr = np.arange(1000, dtype=np.int32).reshape(500, 2)
    path = tmp_path / "g.h5"
    with golden_writer(path, force=True) as f:
        write_root_attrs(f, {"signature": "serving_default"})
        f.create_group("inputs")
        ds = f.create_group("outputs").create_dataset("out", data=arr, chunks=(100, 2),
                                                      scaleoffset=0)
        ds.attrs.update({"dtype": "int32", "shape": "[500, 2]",
                         "sha256": tensor_sha256(arr)})
    with open_stored(path, defer_tensors=True) as g:
        assert g.deferred == frozenset()
    with h5py.File(path, "r+") as f:
        f["outputs/out"][7, 0] = 99
    with pytest.raises(GoldenError, match="sha256"), open_stored(path, defer_tensors=True):
        pass


def test_a_golden_replaced_while_streamed_is_refused(tmp_path: Path) -> None:
    """What was validated is what was read: a golden another record replaces under a
    streaming reader is refused when the reader settles its deferred checks, as a whole
    read refuses one replaced under it (io.check_unchanged, the one statement of it)."""
    from snapshot_tool.golden.io import check_unchanged, file_identity

    p = tmp_path / "g.h5"
    _write(p, np.arange(40, dtype=np.float32).reshape(20, 2), 4)
    before = file_identity(p)
    check_unchanged(p, before)
    with open_stored(p, defer_tensors=True) as g:
        _write(p, np.ones((20, 2), np.float32), 4)  # a whole new file under the same name
        with pytest.raises(GoldenError, match="changed while it was being read"):
            g.check_deferred(())
    with pytest.raises(GoldenError, match="changed while it was being read"):
        check_unchanged(p, before)


def test_a_raw_tensor_whose_layout_points_at_the_superblock_is_refused_by_its_checksum(
        tmp_path: Path) -> None:
    # An edited layout message that sends a contiguous tensor to address 0 (the golden
    # rewritten with HDF5's earliest object headers, which carry no checksum of their own):
    # the tensor is not left to the streaming reader, and the child's checksum names it.
    import struct

    arr = np.random.default_rng(2).standard_normal((100_000, 4), dtype=np.float32)
    _write(tmp_path / "g.h5", arr, batch=1000)
    path = tmp_path / "early.h5"
    with h5py.File(tmp_path / "g.h5", "r") as src, \
            h5py.File(path, "w", libver="earliest") as dst:
        dst.attrs.update(src.attrs)
        for name in ("inputs", "outputs"):
            dst.create_group(name).attrs.update(src[name].attrs)
        ds = dst["outputs"].create_dataset("out", data=src["outputs/out"][()])
        ds.attrs.update(src["outputs/out"].attrs)
        layout = struct.pack("<QQ", ds.id.get_offset(), arr.nbytes)
    with open_stored(path, defer_tensors=True) as g:
        assert g.deferred == {"/outputs/out"}  # intact, it is left to the reader
    raw = path.read_bytes()
    assert raw.count(layout) == 1
    path.write_bytes(raw.replace(layout, struct.pack("<QQ", 0, arr.nbytes)))
    with pytest.raises(GoldenError, match="sha256"), open_stored(path, defer_tensors=True):
        pass


def test_blocks_stay_a_few_batches_when_a_narrow_tensor_has_long_chunks(tmp_path: Path) -> None:
    # An image classifier's golden: 600 KB input rows (stored raw, or in one-row chunks)
    # beside a class-id output whose 256 KB chunks hold 32768 rows. Blocks aligned to that
    # chunk would hold 32768 images (19 GB); they are whole batches of a few MB instead.
    # Declared, never written: the layouts are real, and no data is stored.
    with h5py.File(tmp_path / "g.h5", "w") as f:
        img = f.create_dataset("img", shape=(100_000, 224, 224, 3), dtype=np.float32)
        cls = f.create_dataset("cls", shape=(100_000,), dtype=np.int64, chunks=(32768,))
        tensors = {k: StoredTensor(f"/inputs/{k}", ds, str(ds.dtype), tuple(ds.shape),
                                   tmp_path / "g.h5") for k, ds in (("img", img), ("cls", cls))}
        per_row = sum(t.row_bytes for t in tensors.values())
        for batch in (1, 32, 1000):
            block = row_block(tensors, batch)
            assert block % batch == 0
            assert block * per_row <= max(16 << 20, batch * per_row), batch

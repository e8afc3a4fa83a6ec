"""inputs/: synthesis rules, TFRecord reading, batching edge cases."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.batching import batches, num_rows, row_slice
from snapshot_tool.inputs.files import from_file
from snapshot_tool.inputs.synthesize import synthesize
from snapshot_tool.inputs.tfrecord import crc32c, is_tfrecord_path, masked_crc32c, read_tfrecord
from snapshot_tool.models.base import SignatureInfo, TensorSpec
from tests.fixtures import kinds

RECORDS = [b"", b"a", b"hello world", bytes(range(256)) * 3]


def _frame(record: bytes) -> bytes:
    """One TFRecord frame, written independently of TensorFlow and of the reader."""
    length = struct.pack("<Q", len(record))
    return (length + struct.pack("<I", masked_crc32c(length)) + record
            + struct.pack("<I", masked_crc32c(record)))


def _sig(*specs: TensorSpec, method: str | None = "predict") -> SignatureInfo:
    return SignatureInfo("sig", tuple(specs), (TensorSpec("y", "float32", (None,)),), method)


EXAMPLES = TensorSpec("inputs", "string", (None,))


# --- tfrecord ------------------------------------------------------------------------------


def test_crc32c_known_vector() -> None:
    # The CRC-32C check value from RFC 3720 / every CRC catalogue.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_reads_what_tensorflow_writes(tmp_path: Path, compression: str) -> None:
    path = kinds.write_tfrecord(tmp_path / "r.tfrecord", RECORDS, compression)
    got = read_tfrecord(path)
    assert got.dtype == object and got.ndim == 1
    assert list(got) == RECORDS
    assert all(type(r) is bytes for r in got)


def test_reads_own_frames_and_gz_suffix(tmp_path: Path) -> None:
    path = tmp_path / "r.tfrecords.gz"
    path.write_bytes(gzip.compress(b"".join(_frame(r) for r in RECORDS)))
    assert is_tfrecord_path(path)
    assert list(read_tfrecord(path)) == RECORDS


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "holds no records"),
    (b"plain text, certainly not a TFRecord", "not a TFRecord file"),
    (_frame(b"abc")[:-2], "truncated"),
    (_frame(b"abc") + b"\x01\x02", "truncated"),
    (_frame(b"abc")[:12] + b"X" + _frame(b"abc")[13:], "data checksum"),
    (b"\x1f\x8bnot gzip at all", "GZIP"),
])
def test_bad_files_are_one_precise_error(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(content)
    with pytest.raises(InputsError, match=fragment) as err:
        read_tfrecord(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_tfrecord(tmp_path: Path) -> None:
    with pytest.raises(InputsError, match="not found"):
        read_tfrecord(tmp_path / "nope.tfrecord")


def test_is_tfrecord_path() -> None:
    assert all(is_tfrecord_path(p) for p in ("a.tfrecord", "A.TFRECORDS", "x.tfrec",
                                             "x.tfrecord.gz"))
    assert not any(is_tfrecord_path(p) for p in ("a.npz", "a.h5", "tfrecord", "a.gz"))


# --- from_file with TFRecords ----------------------------------------------------------------


def _write(tmp_path: Path, records: list[bytes]) -> Path:
    path = tmp_path / "in.tfrecord"
    path.write_bytes(b"".join(_frame(r) for r in records))
    return path


def test_tfrecord_feeds_the_single_string_input(tmp_path: Path) -> None:
    records = [b"ex0", b"ex1", b"ex2"]
    feeds = from_file(_sig(EXAMPLES, method="regress"), _write(tmp_path, records))
    assert set(feeds) == {"inputs"}
    assert feeds["inputs"].dtype == object and list(feeds["inputs"]) == records


def test_tfrecord_for_examples_declared_as_a_column(tmp_path: Path) -> None:
    spec = TensorSpec("examples", "string", (None, 1))
    feeds = from_file(_sig(spec), _write(tmp_path, [b"a", b"b"]))
    assert feeds["examples"].shape == (2, 1)


@pytest.mark.parametrize("specs", [
    (TensorSpec("x", "float32", (None, 3)),),
    (EXAMPLES, TensorSpec("weight", "float32", (None,))),
    (),
])
def test_tfrecord_refused_for_other_signatures(tmp_path: Path,
                                               specs: tuple[TensorSpec, ...]) -> None:
    with pytest.raises(InputsError, match="TFRecord") as err:
        from_file(_sig(*specs), _write(tmp_path, [b"a"]))
    assert ".npz" in str(err.value)


# --- synthesis -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_random_strings_are_not_examples(method: str) -> None:
    with pytest.raises(InputsError, match=r"--inputs FILE\.tfrecord") as err:
        synthesize(_sig(EXAMPLES, method=method), 4, 0)
    assert "'inputs'" in str(err.value) and method in str(err.value)


def test_predict_string_inputs_are_synthesized() -> None:
    feeds = synthesize(_sig(EXAMPLES, method="predict"), 4, 0)
    assert feeds["inputs"].dtype == object and all(isinstance(v, bytes)
                                                   for v in feeds["inputs"])
    # A classify signature without string inputs (rare, but legal) is synthesized too.
    num = TensorSpec("x", "float32", (None, 2))
    assert synthesize(_sig(num, method="classify"), 3, 0)["x"].shape == (3, 2)


def test_every_dtype_synthesized_deterministically() -> None:
    specs = tuple(TensorSpec(f"in_{d}", d, (None, 5)) for d in kinds.ALL_DTYPES)
    a = synthesize(_sig(*specs), 6, seed=3)
    b = synthesize(_sig(*specs), 6, seed=3)
    for d in kinds.ALL_DTYPES:
        arr = a[f"in_{d}"]
        assert arr.shape == (6, 5)
        want = "string" if arr.dtype == object else str(arr.dtype)
        assert want == d
        np.testing.assert_array_equal(arr, b[f"in_{d}"])


def test_integer_ranges_fit_what_the_integers_mean() -> None:
    """Plain integers (ids, counts, 8-bit ones too: an Embedding's ids may be uint8) stay in
    [0, 10); quantized integers span their dtype; the same arrays for the same seed."""
    specs = (TensorSpec("ids", "int32", (None, 64)), TensorSpec("pixels", "uint8", (None, 64)),
             TensorSpec("q8", "int8", (None, 64), quantization=(0.0039, -128)),
             TensorSpec("q16", "int16", (None, 64), quantization=(0.001, 0)))
    a = synthesize(_sig(*specs), 32, seed=1)
    for name in ("ids", "pixels"):
        assert a[name].min() >= 0 and a[name].max() < 10
    for name, dt in (("q8", np.int8), ("q16", np.int16)):
        info = np.iinfo(dt)
        span = int(info.max) - int(info.min)
        # 2048 uniform draws: the extremes' tenths are hit with near certainty.
        assert a[name].min() < info.min + span // 10 and a[name].max() > info.max - span // 10
    b = synthesize(_sig(*specs), 32, seed=1)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_no_input_signature_synthesizes_nothing() -> None:
    assert synthesize(_sig(), 64, 0) == {}


# --- batching --------------------------------------------------------------------------------


def test_no_inputs_is_one_empty_batch() -> None:
    assert num_rows({}) == 0
    assert list(batches({}, 16)) == [{}]
    assert list(batches({}, 1)) == [{}]


def test_batches_split_rows() -> None:
    arrays = {"x": np.arange(10), "s": np.array([str(i).encode() for i in range(10)],
                                                dtype=object)}
    got = list(batches(arrays, 4))
    assert [num_rows(b) for b in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in got]), arrays["x"])


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(InputsError, match="--batch-size"):
        list(batches({}, 0))


def test_narrowing_casts_that_lose_values_are_refused() -> None:
    from snapshot_tool.inputs.files import conform

    f32 = TensorSpec("x", "float32", (None, 2))
    ok = conform(f32, np.array([[1.5, 2.0]], np.float64), "f.npz")
    assert ok.dtype == np.float32
    with pytest.raises(InputsError, match="overflow float32"):
        conform(f32, np.array([[1e300, 0.0]], np.float64), "f.npz")
    i8 = TensorSpec("ids", "int8", (None,))
    assert conform(i8, np.array([1, -3], np.int64), "f.npz").dtype == np.int8
    with pytest.raises(InputsError, match="do not fit int8"):
        conform(i8, np.array([1, 300], np.int64), "f.npz")


def test_strings_in_npz_fixed_width_or_refused_with_the_way_out(tmp_path: Path) -> None:
    from snapshot_tool.inputs.files import load_arrays

    info = SignatureInfo("s", (TensorSpec("text", "string", (None,)),), ())
    np.savez(tmp_path / "fixed.npz", text=np.array(["ab", "c"], dtype="U"))
    got = from_file(info, tmp_path / "fixed.npz")["text"]
    assert got.dtype == object and list(got) == [b"ab", b"c"]
    np.savez(tmp_path / "objects.npz", ok=np.zeros(2), text=np.array(["ab", "c"], dtype=object))
    with pytest.raises(InputsError) as err:
        load_arrays(tmp_path / "objects.npz")
    text = str(err.value)
    assert "'text'" in text and "object array" in text and "not a valid" not in text
    assert "dtype='U'" in text and ".h5" in text and ".tfrecord" in text


def test_npy_feeds_a_single_input_whatever_its_name(tmp_path: Path) -> None:
    # What `np.save` writes: the first thing a new user tries for a one-input model.
    info = SignatureInfo("s", (TensorSpec("features", "float32", (None, 2)),), ())
    np.save(tmp_path / "rows.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    got = from_file(info, tmp_path / "rows.npy")["features"]
    assert got.shape == (3, 2) and got.dtype == np.float32


def test_npy_bad_or_pickled_is_one_precise_error(tmp_path: Path) -> None:
    from snapshot_tool.inputs.files import load_arrays

    np.save(tmp_path / "objects.npy", np.array(["ab", "c"], dtype=object), allow_pickle=True)
    with pytest.raises(InputsError, match="object array"):
        load_arrays(tmp_path / "objects.npy")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputsError, match=r"junk\.npy.*not a valid \.npy"):
        load_arrays(tmp_path / "junk.npy")


def test_a_zip_that_is_not_an_npz_names_the_member(tmp_path: Path) -> None:
    # numpy hands a member that is not .npy back as raw bytes, which then looked like a
    # byte-string array of the wrong dtype.
    import zipfile

    from snapshot_tool.inputs.files import load_arrays

    with zipfile.ZipFile(tmp_path / "data.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(InputsError, match=r"readme\.txt.*np\.savez"):
        load_arrays(tmp_path / "data.npz")


# --- scalar (rank-0) inputs: settings fed with every batch ----------------------------------

KEEP_PROB = TensorSpec("keep_prob", "float32", ())
X4 = TensorSpec("x", "float32", (None, 4))


def test_scalar_inputs_ride_along_with_every_batch() -> None:
    feeds = {"x": np.arange(20.0).reshape(10, 2), "keep_prob": np.float32(0.5)}
    assert num_rows(feeds) == 10 and num_rows({"keep_prob": np.float32(0.5), **feeds}) == 10
    got = list(batches(feeds, 4))
    assert [b["x"].shape[0] for b in got] == [4, 4, 2]
    assert all(b["keep_prob"].ndim == 0 and b["keep_prob"] == np.float32(0.5) for b in got)
    part = row_slice(feeds, 2, 5)
    assert np.array_equal(part["x"], feeds["x"][2:5]) and part["keep_prob"] is feeds["keep_prob"]


def test_only_scalar_inputs_are_one_call() -> None:
    # Like a signature without inputs: no sample dimension to split, so it runs once.
    only = {"temperature": np.float32(2.0)}
    assert num_rows(only) == 0
    assert list(batches(only, 4)) == [only]


def test_scalar_from_npz_and_h5(tmp_path: Path) -> None:
    import h5py

    x = np.ones((6, 4), np.float64)
    np.savez(tmp_path / "d.npz", x=x, keep_prob=np.float64(1.0))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = x
        f["keep_prob"] = np.float32(1.0)
    for name in ("d.npz", "d.h5"):
        got = from_file(_sig(X4, KEEP_PROB), tmp_path / name)
        assert got["x"].shape == (6, 4) and got["x"].dtype == np.float32
        # Cast within its kind as any input is, and still 0-d.
        assert got["keep_prob"].shape == () and got["keep_prob"].dtype == np.float32


def test_unknown_rank_input_takes_a_scalar(tmp_path: Path) -> None:
    # tf.compat.v1.placeholder(tf.float32) without a shape: TF1 scripts declared keep_prob so.
    np.savez(tmp_path / "d.npz", x=np.ones((3, 4), np.float32), keep_prob=np.float32(1.0))
    got = from_file(_sig(X4, TensorSpec("keep_prob", "float32", None)), tmp_path / "d.npz")
    assert got["keep_prob"].shape == ()


@pytest.mark.parametrize(("arrays", "fragments"), [
    ({"x": np.float32(1.0), "keep_prob": np.float32(1.0)},
     ("'x' has a sample dimension", "x: float32[?, 4]", "is a scalar (0-d)",
      "one row per sample")),
    ({"x": np.ones((3, 4), np.float32), "keep_prob": np.ones(3, np.float32)},
     ("'keep_prob' takes a scalar", "has shape (3,)", "keep_prob=np.float32(1.0)")),
    ({"x": np.ones((3, 4), np.float32)},
     ("no array for input 'keep_prob'", "0-d array", "keep_prob=np.float32(1.0)")),
])
def test_scalar_mismatches_say_what_to_store(tmp_path: Path, arrays: dict[str, np.ndarray],
                                             fragments: tuple[str, ...]) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(InputsError) as exc:
        from_file(_sig(X4, KEEP_PROB), tmp_path / "d.npz")
    for frag in fragments:
        assert frag in str(exc.value), (frag, str(exc.value))


def test_scalar_inputs_are_not_synthesized_and_the_error_shows_the_file() -> None:
    sig = _sig(X4, KEEP_PROB, TensorSpec("is_training", "bool", ()),
               TensorSpec("input.1", "int64", (None,)))
    with pytest.raises(InputsError) as exc:
        synthesize(sig, 8, 0)
    msg = str(exc.value)
    assert "'is_training'" in msg and "cannot be synthesized" in msg and "--inputs" in msg
    # Batched inputs first, then the settings; a name np.savez takes only as a ** dict.
    assert ("np.savez('inputs.npz', x=x, is_training=np.bool_(False), "
            "keep_prob=np.float32(1.0), **{'input.1': rows})") in msg

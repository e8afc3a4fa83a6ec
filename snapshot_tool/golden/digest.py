"""The content digest of a golden (format 2) and its optional HMAC signature.

One digest covers every HDF5 object of the file: its path, kind, dtype, shape and every
attribute, so an edited spread, metric value, threshold, latency sample, label or root
attribute changes it. Tensor contents enter through the datasets' ``sha256`` attributes
(each checked against its data on every read), which keeps the digest computable from
metadata alone: a writer that streams tensors chunk by chunk hashes each tensor as it writes
it (:func:`snapshot_tool.golden.io.tensor_sha256` accepts blocks in order) and calls
:func:`content_digest` once at the end.

Layout of the manifest (sorted, one line per object)::

    <path> <sha256(json([kind, dtype, shape, [[attr, canonical value], ...]]))>

and ``content_digest = sha256(manifest)``. Canonical values keep the stored type, so a
number rewritten as text or an int rewritten as a float is a different golden.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from snapshot_tool.errors import GoldenError
from snapshot_tool.golden.schema import CONTENT_DIGEST, CONTENT_HMAC, HMAC_KEY_ENV

_UNSIGNED_ROOT_ATTRS = frozenset({CONTENT_DIGEST, CONTENT_HMAC})


def canonical(value: Any) -> str:
    """A text form of an attribute value that differs whenever value or type differs."""
    if isinstance(value, (bool, np.bool_)):
        return f"?{bool(value)}"
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, bytes):
        return "y" + value.hex()
    if isinstance(value, np.integer):
        return f"i{value.dtype.str}:{int(value)}"
    if isinstance(value, int):
        return f"i:{value}"
    if isinstance(value, np.floating):
        return f"f{value.dtype.str}:{float(value).hex()}"
    if isinstance(value, float):
        return f"f:{value.hex()}"
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            body = json.dumps([canonical(v) for v in value.reshape(-1)])
        else:
            body = np.ascontiguousarray(value).tobytes().hex()
        digest = hashlib.sha256(body.encode()).hexdigest()
        return f"a{value.dtype.str}{list(value.shape)}:{digest}"
    return "r" + repr(value)


def item_hash(obj: Any, attrs: dict[str, Any], is_root: bool) -> str:
    """sha256 of one object's kind, type, shape and attributes."""
    import h5py

    items = [[k, canonical(attrs[k])] for k in sorted(attrs)
             if not (is_root and k in _UNSIGNED_ROOT_ATTRS)]
    if isinstance(obj, h5py.Dataset):
        entry: list[Any] = ["dataset", obj.dtype.str, list(obj.shape), items]
    else:
        entry = ["group", "", [], items]
    return hashlib.sha256(json.dumps(entry).encode()).hexdigest()


def digest_of(objects: Iterable[tuple[str, Any, dict[str, Any]]]) -> str:
    """The content digest from (path, object, attributes) of every object, root "/"."""
    lines = sorted(f"{where} {item_hash(obj, attrs, where == '/')}\n"
                   for where, obj, attrs in objects)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def content_digest(f: Any) -> str:
    """The content digest of the open file ``f`` (a writer calls this once, at the end)."""
    objects = [("/", f, dict(f.attrs.items()))]
    f.visititems(lambda name, obj: objects.append(("/" + name, obj, dict(obj.attrs.items()))))
    return digest_of(objects)


def hmac_key() -> bytes | None:
    """The signing key from the environment, or None when it is not set."""
    # The bytes as the environment holds them: a key that is not UTF-8 (from a secrets
    # store) is a key too, and the same bytes sign alike whatever the locale.
    key = os.environb.get(HMAC_KEY_ENV.encode())
    if key is None:
        return None
    if not key:
        raise GoldenError(f"{HMAC_KEY_ENV} is set but empty; set it to the signing key")
    return key


def sign(digest: str, key: bytes) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def signature_matches(digest: str, signature: str, key: bytes) -> bool:
    return hmac.compare_digest(sign(digest, key), signature)

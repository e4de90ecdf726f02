"""The overflow blob steps of the record layer (sans-I/O): which digest a pointer
carries, and what a read accepts."""

from __future__ import annotations

import hashlib

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from tablesessions import SessionDecodeError, StoreConfig
from tablesessions._record import blobs
from tablesessions._record.effects import PutBlob, ReadBlob
from tablesessions._record.rules import RecordRules
from tablesessions.models import BlobPointer

DATA = b"\x01payload" * 1000


def _rules() -> RecordRules:
    return RecordRules(StoreConfig())


def _finish(op: object, value: object) -> object:
    with pytest.raises(StopIteration) as done:
        op.send(value)  # type: ignore[attr-defined]
    return done.value.value


def test_an_upload_binds_the_blob_by_the_etag_it_answered() -> None:
    op = blobs.upload(_rules(), "rk", DATA)
    effect = next(op)
    assert isinstance(effect, PutBlob) and effect.data is DATA
    assert effect.name.startswith("default/rk/")
    pointer = _finish(op, '"0x1"')
    assert pointer == BlobPointer(effect.name, len(DATA), 'etag:"0x1"')


def test_an_upload_whose_answer_was_lost_binds_the_bytes() -> None:
    """A retried upload that finds its own first attempt (409) has no ETag."""
    op = blobs.upload(_rules(), "rk", DATA)
    next(op)
    with pytest.raises(StopIteration) as done:
        op.throw(ResourceExistsError("exists"))
    assert done.value.value.digest == hashlib.sha256(DATA).hexdigest()


def test_a_read_asks_for_the_pointers_etag_and_refuses_another() -> None:
    rules = _rules()
    pointer = BlobPointer("default/rk/x", len(DATA), 'etag:"0x1"')
    op = blobs.read(rules, pointer, {})
    effect = next(op)
    assert effect == ReadBlob("default/rk/x", len(DATA), '"0x1"')
    assert _finish(op, DATA) is DATA

    op = blobs.read(rules, pointer, {})
    next(op)
    with pytest.raises(SessionDecodeError, match="digest"):
        op.throw(ResourceModifiedError("not this ETag"))


def test_an_etag_digest_is_never_accepted_without_the_etag_check() -> None:
    rules = _rules()
    pointer = BlobPointer("default/rk/x", len(DATA), 'etag:"0x1"')
    with pytest.raises(SessionDecodeError):
        rules.verify_blob(pointer, DATA, {})  # e.g. a reader that did not compare ETags
    with pytest.raises(SessionDecodeError):
        rules.verify_blob(pointer, DATA[:-1], {}, matched=True)  # wrong size
    rules.verify_blob(pointer, DATA, {}, matched=True)


def test_a_sha256_pointer_reads_unconditionally_and_checks_the_bytes() -> None:
    rules = _rules()
    pointer = BlobPointer("default/rk/x", len(DATA), hashlib.sha256(DATA).hexdigest())
    op = blobs.read(rules, pointer, {})
    assert next(op) == ReadBlob("default/rk/x", len(DATA), None)
    assert _finish(op, DATA) is DATA
    op = blobs.read(rules, pointer, {})
    next(op)
    with pytest.raises(SessionDecodeError):
        op.send(DATA[:-1] + b"x")

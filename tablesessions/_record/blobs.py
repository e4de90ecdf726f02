"""Moving a record's overflow blob (sans-I/O): the upload that makes a pointer,
and the read that checks a pointer's blob before it is decoded.

Both record kinds (sessions, the cache) write a blob before the row that points
to it, and read it after the row; what binds the two is the pointer's digest
(docs/overflow.md, "Integrity").
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from ..exceptions import SessionDecodeError
from ..models import BlobPointer
from .effects import Op, PutBlob, ReadBlob
from .rules import RecordRules


def upload(rules: RecordRules, row_key: str, stored: bytes) -> Op[BlobPointer]:
    """Put ``stored`` as a new immutable blob of ``row_key``; return its pointer."""
    name = rules.new_blob_name(row_key)
    etag: str | None = None
    # A 409 can only be our own earlier attempt: the name is unguessable, never
    # reused. Its ETag was lost with the answer, so that pointer binds the bytes.
    with contextlib.suppress(ResourceExistsError):
        etag = yield PutBlob(name, stored)
    return rules.uploaded_pointer(name, stored, etag)


def read(rules: RecordRules, pointer: BlobPointer, entity: Mapping[str, Any]) -> Op[bytes | None]:
    """The blob ``pointer`` names, checked against it; None when it is gone (a
    concurrent save replaced and deleted it: re-read the row).

    :raises SessionDecodeError: when the blob is not the one the pointer names.
    """
    etag = rules.blob_etag(pointer)
    try:
        data: bytes = yield ReadBlob(pointer.name, pointer.size, etag)
    except ResourceNotFoundError:
        return None
    except ResourceModifiedError:
        # Not the ETag the upload answered: the blob was written since.
        raise SessionDecodeError("overflow blob does not match its pointer's digest (ETag): "
                                 "rewritten after its row named it") from None
    rules.verify_blob(pointer, data, entity, matched=etag is not None)
    return data

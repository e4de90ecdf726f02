"""Read the service's error code off an exception chain, and name missing storage.

Azure answers a request on a table or container that does not exist with a 404
whose ``x-ms-error-code`` is ``TableNotFound`` or ``ContainerNotFound``; a 404 on
an entity or blob inside existing storage carries ``ResourceNotFound`` or
``BlobNotFound``. Only the code tells "no such session" from "no such table".
"""

from __future__ import annotations

#: The codes meaning the table or the container itself is missing.
MISSING_STORAGE_CODES = frozenset({"TableNotFound", "ContainerNotFound"})


def error_code(exc: BaseException | None) -> str | None:
    """Return the first Azure error code on ``exc`` or its ``__cause__`` chain, or None.

    Looks at ``.error_code`` (an enum or a string), then the response's
    ``x-ms-error-code`` header; wrappers such as ``StorageNotFoundError`` are
    seen through by following ``__cause__``.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "error_code", None)
        if code is not None:
            return str(getattr(code, "value", code))
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None:
            header = headers.get("x-ms-error-code")
            if header:
                return str(header)
        exc = exc.__cause__
    return None


def missing_storage(exc: BaseException | None) -> str | None:
    """``"TableNotFound"`` or ``"ContainerNotFound"`` when that is why ``exc`` failed."""
    code = error_code(exc)
    return code if code in MISSING_STORAGE_CODES else None

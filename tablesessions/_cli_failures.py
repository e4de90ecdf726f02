"""What the ``tablesessions`` command says when storage fails or is slow to answer.

Every storage error becomes one line that names the next step (run
``tablesessions init``, check the key, check the endpoint) and one exit code;
a wait longer than about a second says what it is waiting for (issue 17).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ._record.storage_errors import error_code, missing_storage
from .config import (
    ENV_BLOB_ENDPOINT,
    ENV_CACHE_CONTAINER_NAME,
    ENV_CACHE_TABLE_NAME,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)

#: Azure error codes meaning the credential is wrong (a bad key or SAS), not missing rights.
_BAD_CREDENTIAL = frozenset({"AuthenticationFailed", "InvalidAuthenticationInfo"})
#: Codes meaning the identity is known but lacks a role on the account.
_NO_RIGHTS = frozenset({"AuthorizationFailure", "AuthorizationPermissionMismatch",
                        "AuthorizationResourceTypeMismatch", "InsufficientAccountPermissions"})


@dataclass(frozen=True)
class Target:
    """Where the command talks to, for messages: endpoints and storage names."""

    table_endpoint: str
    blob_endpoint: str
    table_name: str
    container_name: str
    #: A connection string with an account key (not a token credential or a SAS).
    uses_key: bool = False
    #: The key-value cache's storage (``tablesessions cache ...``), not the sessions'.
    cache: bool = False

    @property
    def init_command(self) -> str:
        return "tablesessions cache init" if self.cache else "tablesessions init"

    @property
    def table_setting(self) -> str:
        return ENV_CACHE_TABLE_NAME if self.cache else ENV_TABLE_NAME

    @property
    def container_setting(self) -> str:
        return ENV_CACHE_CONTAINER_NAME if self.cache else ENV_CONTAINER_NAME

    @classmethod
    def from_env(cls, env: Mapping[str, str], table_name: str,
                 container_name: str, *, cache: bool = False) -> Target:
        table, blob = env.get(ENV_TABLE_ENDPOINT, ""), env.get(ENV_BLOB_ENDPOINT, "")
        conn = env.get(ENV_CONNECTION_STRING)
        uses_key = False
        if conn:
            parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
            if parts.get("UseDevelopmentStorage", "").lower() == "true":
                parts.setdefault("TableEndpoint", "http://127.0.0.1:10002/devstoreaccount1")
                parts.setdefault("BlobEndpoint", "http://127.0.0.1:10000/devstoreaccount1")
            account, suffix = parts.get("AccountName", "?"), parts.get(
                "EndpointSuffix", "core.windows.net")
            scheme = parts.get("DefaultEndpointsProtocol", "https")
            table = parts.get("TableEndpoint") or f"{scheme}://{account}.table.{suffix}"
            blob = parts.get("BlobEndpoint") or f"{scheme}://{account}.blob.{suffix}"
            uses_key = "AccountKey" in parts or "UseDevelopmentStorage" in parts
        return cls(table.rstrip("/"), blob.rstrip("/"), table_name, container_name, uses_key,
                   cache)


def describe(exc: BaseException, target: Target, elapsed: float) -> str | None:
    """One line for a storage failure, with the next step; None if ``exc`` is not one.

    ``elapsed``: seconds the command waited before giving up, for the message.
    """
    missing = missing_storage(exc)
    if missing == "TableNotFound":
        return (f"the table {target.table_name!r} does not exist at {target.table_endpoint}: "
                f"run `{target.init_command}` (or check --table-name / "
                f"{target.table_setting})")
    if missing == "ContainerNotFound":
        return (f"the blob container {target.container_name!r} does not exist at "
                f"{target.blob_endpoint}: run `{target.init_command}` (or check "
                f"--container-name / {target.container_setting})")
    cause = _azure_error(exc)
    if cause is None:
        return None
    code = error_code(cause)
    status = getattr(cause, "status_code", None)
    # Azurite answers a wrong key with AuthorizationFailure; with a key, any 403
    # but a role mismatch points at the key.
    if code in _BAD_CREDENTIAL or (status == 403 and (
            target.uses_key or code not in _NO_RIGHTS)):
        return (f"storage refused the credentials (403 {code or 'Forbidden'}): check the "
                f"account key in the connection string (--connection-string / "
                f"{ENV_CONNECTION_STRING}), or the SAS token")
    if code in _NO_RIGHTS:
        return (f"the identity has no rights on this account (403 {code}): give it "
                "the 'Storage Table Data Contributor' and 'Storage Blob Data Contributor' "
                "roles (see docs/deploy.md)")
    if isinstance(cause, ClientAuthenticationError):
        return (f"could not get a credential ({type(cause).__name__}): sign in (az login) "
                f"or pass --connection-string; {_first_line(cause)}")
    if isinstance(cause, (ServiceRequestError, ServiceResponseError)):
        what = "did not answer in time" if "timed out" in str(cause).lower() else (
            "cannot be reached")
        return (f"storage at {target.table_endpoint} {what} (gave up after {elapsed:.1f} s: "
                f"{_first_line(cause)}): check the endpoint "
                f"(--connection-string, or --table-endpoint and --blob-endpoint) and that "
                f"the service is running; or raise --timeout")
    detail = type(cause).__name__
    if isinstance(cause, HttpResponseError) and cause.status_code:
        detail += f" {cause.status_code}"
    if code:
        detail += f" {code}"
    return f"storage error ({detail}): {_first_line(cause)}"


def _azure_error(exc: BaseException | None) -> AzureError | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, AzureError):
            return exc
        exc = exc.__cause__
    return None


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return (str(message).strip().splitlines() or [""])[0][:300]


class _RetrySeen(logging.Handler):
    """Remembers the last retried error the retry layer logs (at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and isinstance(record.args, tuple) and len(record.args) == 2:
            self.last = str(record.args[1])


class Waiting:
    """A context that, while no storage response has come back for ``after`` seconds,
    prints once on ``stream`` what the command is waiting for.

    ``on_response`` is the ``raw_response_hook`` of the store's clients: every
    answer (even an error status) resets the clock, so a long sweep that keeps
    getting answers never prints it.
    """

    def __init__(self, what: str, timeout: float, *, target: Target | None = None,
                 stream: TextIO | None = None, after: float = 1.0) -> None:
        self.what, self.target, self.timeout = what, target, timeout
        self.stream = stream or sys.stderr
        self.after = after
        self.answered_at = time.monotonic()
        self.told = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retries = _RetrySeen()
        self._logger = logging.getLogger("tablesessions.retry")
        self._level = self._logger.level

    def on_response(self, response: Any) -> None:
        self.answered_at = time.monotonic()

    def __enter__(self) -> Waiting:
        self.answered_at = time.monotonic()
        self._logger.addHandler(self._retries)
        if self._logger.getEffectiveLevel() > logging.DEBUG:
            self._logger.setLevel(logging.DEBUG)
        self._thread = threading.Thread(target=self._watch, name="tablesessions-waiting",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._logger.removeHandler(self._retries)
        self._logger.setLevel(self._level)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            if self.told or time.monotonic() - self.answered_at < self.after:
                continue
            retried = f"; retrying after {self._retries.last}" if self._retries.last else ""
            where = f" at {self.target.table_endpoint}" if self.target else ""
            self.stream.write(
                f"tablesessions: waiting for storage{where} to "
                f"{self.what}{retried} (gives up after {self.timeout:g} s per call; "
                f"--timeout)\n")
            self.stream.flush()
            self.told = True

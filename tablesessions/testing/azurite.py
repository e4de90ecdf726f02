"""Run a private Azurite emulator on free loopback ports for tests and demos.

Azurite is the Node.js storage emulator pinned in package.json.  Each
:class:`AzuriteServer` gets its own ports (other processes on a machine may hold
the default 10000-10002), runs in its own process group so that stopping it
never leaves a stray ``node`` behind, and waits until the Table endpoint really
answers HTTP before handing out a connection string.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AzuriteNotFoundError",
    "AzuriteServer",
    "AzuriteStartError",
    "find_azurite",
    "free_ports",
]

ACCOUNT_NAME = "devstoreaccount1"
# The emulator's published well-known key; it protects nothing.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
HOST = "127.0.0.1"
# Azurite's default ports; another emulator (or a developer's) may hold them.
_DEFAULT_PORTS = frozenset({10000, 10001, 10002})
_BIN_ENV = "AZURITE_BIN"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class AzuriteNotFoundError(FileNotFoundError):
    """No ``azurite`` executable could be located."""


class AzuriteStartError(RuntimeError):
    """Azurite exited early or did not become ready in time."""


def _node_modules_bin_upward(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "node_modules" / ".bin" / "azurite"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_azurite() -> Path:
    """Locate the ``azurite`` executable.

    Order: ``$AZURITE_BIN``; ``azurite`` on ``PATH``; ``node_modules/.bin/azurite``
    in the current directory or any parent; the same under this package's repo root.
    """
    override = os.environ.get(_BIN_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AzuriteNotFoundError(f"${_BIN_ENV}={override!r} is not an executable file")
        return path
    on_path = shutil.which("azurite")
    if on_path:
        return Path(on_path)
    for start in (Path.cwd().resolve(), _REPO_ROOT):
        found = _node_modules_bin_upward(start)
        if found is not None:
            return found
    raise AzuriteNotFoundError(
        "Cannot find the Azurite emulator. Tried: "
        f"1) the {_BIN_ENV} environment variable (unset); "
        "2) `azurite` on PATH; "
        f"3) node_modules/.bin/azurite upward from {Path.cwd()} and from {_REPO_ROOT}. "
        "Install it (needs Node.js and npm) in your project's directory with "
        "`npm install --save-dev azurite@3.35.0`, "
        f"or set {_BIN_ENV} to the path of an azurite executable. "
        "(In a clone of the tablesessions repository: `npm ci`, or scripts/bootstrap.sh.)"
    )


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback ports chosen by the kernel.

    All sockets are held open together so the ports differ; there is a small
    window between closing them and Azurite binding, which ``start`` retries.
    """
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
            if port not in _DEFAULT_PORTS:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class AzuriteServer:
    """An Azurite process with its own free ports; a context manager.

    ``location=None`` keeps all data in memory; give a directory to persist to
    disk (so :meth:`kill` followed by :meth:`restart` keeps the data, which
    crash-recovery tests need).  :meth:`restart` reuses the same ports, so
    connection strings handed out earlier stay valid.
    """

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(
        self,
        *,
        location: str | Path | None = None,
        executable: str | Path | None = None,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.location = Path(location) if location is not None else None
        self._executable = Path(executable) if executable is not None else None
        self.startup_timeout = startup_timeout
        self._extra_args = tuple(extra_args)
        self._ports: tuple[int, int, int] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._finalizer: weakref.finalize[[int, signal.Signals], AzuriteServer] | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> AzuriteServer:
        """Start Azurite and block until it serves requests. Returns ``self``."""
        if self.running:
            return self
        if self._ports is not None:
            self._launch(self._ports)  # a restart: the ports must not change
            return self
        last_error: AzuriteStartError | None = None
        # Another process can grab a port between free_ports() and Azurite's bind.
        for _ in range(3):
            blob, queue, table = free_ports(3)
            try:
                self._launch((blob, queue, table))
            except AzuriteStartError as exc:
                last_error = exc
                if "EADDRINUSE" not in str(exc):
                    raise
            else:
                self._ports = (blob, queue, table)
                return self
        assert last_error is not None
        raise last_error

    def stop(self, grace: float = 5.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` s.

        Safe to call more than once.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would.

        With ``location=``, Azurite 3.35 saves its table/blob metadata (LokiJS)
        every 5 s and on SIGTERM, so writes from the last ~5 s before a kill are
        lost; :meth:`stop` loses nothing.
        """
        if self._process is not None:
            self._reap()

    def restart(self) -> AzuriteServer:
        """Stop (if running) and start again on the same ports."""
        self.stop()
        return self.start()

    def _reap(self) -> None:
        process = self._process
        assert process is not None
        # Also catches any children Azurite spawned, even if the leader is gone.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _command(self, ports: tuple[int, int, int]) -> list[str]:
        blob, queue, table = ports
        executable = self._executable or find_azurite()
        storage = (
            ["--location", str(self.location)]
            if self.location is not None
            else ["--inMemoryPersistence"]
        )
        return [
            str(executable),
            *storage,
            "--silent",
            "--disableTelemetry",
            # azure-storage-blob sends an API version newer than Azurite 3.35 knows.
            "--skipApiVersionCheck",
            "--blobHost", HOST, "--blobPort", str(blob),
            "--queueHost", HOST, "--queuePort", str(queue),
            "--tableHost", HOST, "--tablePort", str(table),
            *self._extra_args,
        ]  # fmt: skip

    def _launch(self, ports: tuple[int, int, int]) -> None:
        command = self._command(ports)
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
        # Azurite may write workspace files to its cwd; keep them out of the repo.
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        log_path = Path(self._workdir.name) / "azurite.log"
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir.name,
                start_new_session=True,  # own process group: stop() kills all of it
            )
        # If the owner forgets stop(), don't leave node running after the interpreter.
        self._finalizer = weakref.finalize(self, _signal_group, self._process.pid, signal.SIGKILL)
        try:
            self._wait_ready(ports, log_path)
        except BaseException:
            self._reap()
            raise

    def _wait_ready(self, ports: tuple[int, int, int], log_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        blob, _queue, table = ports
        while True:
            code = self._process.poll()
            if code is not None:
                raise AzuriteStartError(
                    f"Azurite exited with code {code} during start-up "
                    f"(ports blob={blob} table={table}). Output tail:\n{_tail(log_path)}"
                )
            if _port_open(blob) and _port_open(table) and _http_answers(table):
                return
            if time.monotonic() > deadline:
                raise AzuriteStartError(
                    f"Azurite was not ready within {self.startup_timeout:g} s "
                    f"(ports blob={blob} table={table}). Output tail:\n{_tail(log_path)}"
                )
            time.sleep(0.05)

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the Azurite process (also its process-group id), if started."""
        return self._process.pid if self._process is not None else None

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise RuntimeError("AzuriteServer has not been started")
        return self._ports[index]

    @property
    def blob_port(self) -> int:
        return self._port(0)

    @property
    def queue_port(self) -> int:
        return self._port(1)

    @property
    def table_port(self) -> int:
        return self._port(2)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return self.connection_string_for()

    def connection_string_for(
        self, *, table_endpoint: str | None = None, blob_endpoint: str | None = None
    ) -> str:
        """A connection string for this account; override endpoints to go via proxies."""
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={blob_endpoint or self.blob_endpoint};"
            f"TableEndpoint={table_endpoint or self.table_endpoint};"
        )

    def __repr__(self) -> str:
        state = f"ports={self._ports}" if self._ports else "not started"
        return f"<AzuriteServer {state} running={self.running} location={self.location}>"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_answers(port: int) -> bool:
    """True once the table service answers HTTP at all (a 403 without auth is fine)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", f"/{ACCOUNT_NAME}/Tables")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "<no output captured>"
    return data[-limit:].decode("utf-8", "replace") or "<no output>"

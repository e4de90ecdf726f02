"""Storage calls per operation, counted at the transport with ``RequestCounter``.

Every row runs the real operation against Azurite with a counting store and
records each HTTP request the SDK clients sent (retries would be counted too;
Azurite never fails, so there are none). These are the billed storage
transactions of ``docs/cost.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import tablesessions
from tablesessions.testing import RecordedRequest, RequestCounter, unique_name

from .flask_flows import COOKIE, SECRET, FloorCookies, library_app
from .payloads import KIB, MIB, incompressible, session_data
from .scenarios import LONG_ABSOLUTE, ShiftedClock

#: The sweep row: this many expired sessions, spread over all 16 partitions.
SWEEP_EXPIRED = 100
PARTITIONS = 16


@dataclass
class CallCount:
    """One operation's storage calls."""

    operation: str
    calls: int
    kinds: dict[str, int] = field(default_factory=dict)
    notes: str = ""

    @property
    def breakdown(self) -> str:
        return ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "calls": self.calls, "kinds": dict(self.kinds),
                "notes": self.notes}


def _kind(r: RecordedRequest) -> str:
    """A readable label for one request: service, method and what it did."""
    if r.service == "table":
        if r.path.endswith("$batch"):
            return "table batch"
        if r.method == "GET" and r.path.endswith("()"):
            return "table query"
        return {"GET": "table read", "POST": "table insert", "PUT": "table replace",
                "PATCH": "table merge", "MERGE": "table merge",
                "DELETE": "table delete"}.get(r.method, f"table {r.method}")
    if "comp=lease" in r.url:
        return "blob lease"
    if "comp=list" in r.url:
        return "blob list"
    return {"GET": "blob read", "PUT": "blob write", "DELETE": "blob delete",
            "HEAD": "blob properties"}.get(r.method, f"blob {r.method}")


class Counted:
    """A store on fresh storage whose requests are counted."""

    def __init__(self, conn_str: str, **options: Any) -> None:
        self.counter = RequestCounter()
        self.store = tablesessions.SessionStore.from_connection_string(
            conn_str, table_name=unique_name("calls"), container_name=unique_name("calls"),
            client_options=self.counter.client_options(), **options)
        self.store.create_storage()
        self.counter.reset()

    def close(self) -> None:
        self.store.close()

    def measure(self, operation: str, action: Callable[[], object], notes: str = "") -> CallCount:
        """Count the requests ``action`` sends."""
        self.counter.reset()
        action()
        records = self.counter.records
        return CallCount(operation, len(records), dict(Counter(_kind(r) for r in records)), notes)


@contextmanager
def counted(conn_str: str, **options: Any) -> Iterator[Counted]:
    c = Counted(conn_str, **options)
    try:
        yield c
    finally:
        c.close()


def _saved(store: tablesessions.SessionStore, data: dict[str, Any]) -> tablesessions.Session:
    s = store.new()
    s.update(data)
    store.save(s)
    return s


def _partition_of(session_id: str) -> str:
    # docs/data-format.md: PartitionKey = "<app>-" + first hex digit of SHA-256(id)
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()[0]


def _store_rows(conn_str: str) -> list[CallCount]:
    data = session_data(KIB)
    rows: list[CallCount] = []
    clock = ShiftedClock()
    with counted(conn_str, clock=clock, absolute_timeout=LONG_ABSOLUTE) as c:
        store = c.store
        rows.append(c.measure("create (new + save)", lambda: _saved(store, data)))
        sid = _saved(store, data).id
        rows.append(c.measure("read (get; refresh not due)", lambda: store.get(sid)))

        def read_only_request() -> None:
            s = store.get(sid)
            assert s is not None
            store.save(s)  # what an integration does at the end of every request

        rows.append(c.measure("read-only request (get + save, refresh not due)",
                              read_only_request, "save() finds nothing to write"))

        def read_due() -> None:
            clock.offset += dt.timedelta(minutes=11)  # under half the idle time left
            read_only_request()

        rows.append(c.measure("read due for refresh (get + save)", read_due,
                              "merges the expiry column only"))

        def modify() -> None:
            s = store.get(sid)
            assert s is not None
            s["visits"] = s["visits"] + 1
            store.save(s)

        rows.append(c.measure("modify (get + set + save)", modify,
                              "conditional replace (If-Match)"))
        rows.append(c.measure("logout (get + delete)",
                              lambda: store.delete(store.get(sid))))
        rows.append(c.measure("read of a missing or expired id", lambda: store.get(sid)))
        rows.append(c.measure("read of a malformed id", lambda: store.get("not-an-id"),
                              "rejected before any I/O"))

        big = {**session_data(KIB), "upload": incompressible(MIB)}
        rows.append(c.measure("overflow write (new + save, 1 MiB)", lambda: _saved(store, big),
                              "blob first, then the entity pointing at it"))
        oid = _saved(store, big).id
        rows.append(c.measure("overflow read (get, 1 MiB)", lambda: store.get(oid)))
        huge = _saved(store, {"upload": incompressible(16 * MIB)}).id
        rows.append(c.measure("overflow read (get, 16 MiB)", lambda: store.get(huge),
                              "one blob GET, however large"))

        def overflow_modify() -> None:
            s = store.get(oid)
            assert s is not None
            s["visits"] = s["visits"] + 1
            store.save(s)

        rows.append(c.measure("overflow modify (get + set + save, 1 MiB)", overflow_modify,
                              "new immutable blob, replace, old blob deleted"))
    return rows


def _flask_rows(conn_str: str) -> list[CallCount]:
    data = session_data(KIB)
    rows: list[CallCount] = []
    with counted(conn_str) as c:
        client = library_app(c.store, data).test_client(use_cookies=False)
        created: list[str] = []

        def create() -> None:
            response = client.post("/create")
            created.append(response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1])

        rows.append(c.measure("flask: create", create))
        cookie = {"Cookie": f"{COOKIE}={created[0]}"}
        rows.append(c.measure("flask: read-only request", lambda: client.get("/read",
                                                                             headers=cookie)))
        rows.append(c.measure("flask: modify request", lambda: client.post("/modify",
                                                                           headers=cookie)))
        # Well-formed, signed with another secret: what an attacker can make.
        forged = FloorCookies.for_secret(SECRET + "-not").sign(tablesessions.new_session_id())
        rows.append(c.measure("flask: forged cookie", lambda: client.get(
            "/read", headers={"Cookie": f"{COOKIE}={forged}"}), "the view still runs"))
        rows.append(c.measure("flask: view that never touches the session",
                              lambda: client.get("/plain", headers=cookie)))
    return rows


def sweep_rows(conn_str: str, expired: int = SWEEP_EXPIRED) -> list[CallCount]:
    """An idle sweep, then one of ``expired`` expired sessions laid over all 16
    partitions; both in the steady state (the sweeper's lock blob already exists:
    the very first run on new storage also creates it)."""
    clock = ShiftedClock()
    with counted(conn_str, clock=clock) as c:
        store = c.store
        missing = set("0123456789abcdef")
        kept = 0
        while kept < expired:
            s = store.new()
            part = _partition_of(s.id)
            # Keep a session if it covers a new partition, or if there is room left
            # after every uncovered partition still gets one: all 16 end up used.
            if part in missing or expired - kept > len(missing):
                missing.discard(part)
                s["user"] = f"user-{kept}"
                store.save(s)
                kept += 1
        store.sweep()  # the first run ever creates the lock blob
        idle = c.measure("sweep, nothing expired", store.sweep,
                         "steady state: the sweeper's lock blob exists")
        clock.offset += dt.timedelta(days=2)  # all expired, past the sweeper's margin
        holder: list[tablesessions.SweepReport] = []
        row = c.measure(f"sweep, {expired} expired sessions (no blobs)",
                        lambda: holder.append(store.sweep()),
                        "the idle sweep's calls + 1 delete batch per partition "
                        "(each holds ≤100 rows of one partition)")
        report = holder[0]
        assert report.deleted == expired, report
        assert report.complete, report
        return [idle, row]


def count_all(conn_str: str) -> list[CallCount]:
    """Every row of the storage-calls table."""
    return [*_store_rows(conn_str), *_flask_rows(conn_str), *sweep_rows(conn_str)]

"""The ``tablesessions`` command: create storage, sweep, stats and inspect.

It uses the public API only: the store comes from ``SessionStore.from_env`` over
the process environment, with the command-line flags written over the
``TABLESESSIONS_*`` variables they stand for (see ``tablesessions.config``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

from . import SessionStore, TableCache, TableSessionsError, __version__, is_valid_session_id
from ._cli_failures import Target, Waiting, describe
from .config import (
    ENV_APP_NAME,
    ENV_BLOB_ENDPOINT,
    ENV_CACHE_APP_NAME,
    ENV_CACHE_CONTAINER_NAME,
    ENV_CACHE_TABLE_NAME,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_ENCRYPTION_KEYS,
    ENV_SWEEP_TIME_BUDGET,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)
from .models import SweepReport
from .retry import RetryPolicy

#: The sweep finished everything and every command did what it was asked.
EXIT_OK = 0
#: Partial: the sweep hit its time budget, lost its lease or had errors (the next
#: run resumes), or ``inspect`` found no session with that id.
EXIT_INCOMPLETE = 1
#: Bad usage or configuration: unknown flag, missing connection settings, bad
#: names, an argument that is not a session id. Nothing was sent to storage.
EXIT_USAGE = 2
#: Not an error: another sweeper holds the lease, so this one did nothing.
EXIT_LOCKED = 3
#: Storage or authentication failure (unreachable endpoint, 403, missing table...).
EXIT_STORAGE = 4
#: Interrupted (Ctrl-C); a sweeper's lease lapses within 60 s.
EXIT_INTERRUPTED = 130
#: Seconds each storage call may take, retries included, unless ``--timeout`` says.
DEFAULT_TIMEOUT = 10.0

_EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success (a sweep that finished all its work)
  {EXIT_INCOMPLETE}    partial: the sweep hit its time budget or had errors (the next run
       resumes), or inspect found no such session
  {EXIT_USAGE}    usage or configuration error (nothing was sent to storage)
  {EXIT_LOCKED}    not an error: another sweeper holds the lease; nothing was done
  {EXIT_STORAGE}    storage or authentication failure
  {EXIT_INTERRUPTED}  interrupted"""

_FLAG_ENV = (
    ("connection_string", ENV_CONNECTION_STRING),
    ("table_endpoint", ENV_TABLE_ENDPOINT),
    ("blob_endpoint", ENV_BLOB_ENDPOINT),
    ("table_name", ENV_TABLE_NAME),
    ("container_name", ENV_CONTAINER_NAME),
    ("app_name", ENV_APP_NAME),
)
#: Under ``tablesessions cache``, the name flags stand for the cache's variables
#: (``TableCache.from_env``), so one environment configures both kinds of storage.
_CACHE_FLAG_ENV = (
    *_FLAG_ENV[:3],
    ("table_name", ENV_CACHE_TABLE_NAME),
    ("container_name", ENV_CACHE_CONTAINER_NAME),
    ("app_name", ENV_CACHE_APP_NAME),
)
_SWEEPER_LOGGER = "tablesessions.sweeper"


class _UsageError(Exception):
    """A command's argument is unusable: exit 2."""


class _RefusedArguments(Exception):
    """argparse refused the command line: exit 2 with ``usage`` and ``message``."""

    def __init__(self, prog: str, usage: str, message: str) -> None:
        super().__init__(message)
        self.prog, self.usage, self.message = prog, usage, message


#: A run of token-like characters this long in an argparse message is not shown.
#: Every flag, command and choice here is shorter (the longest, --connection-string,
#: is 19), and a session id (43), an account key (88) or a mangled token is longer.
_SECRET_LIKE = re.compile(r"[A-Za-z0-9+/=_.~-]{24,}")


class _Parser(argparse.ArgumentParser):
    """argparse with two rules of this command's own.

    A session id is never a flag. One id in 64 starts with ``-`` (base64url),
    which argparse would read as an unknown flag, and one in 4,096 with ``-h``,
    which it would read as ``-h`` plus more and answer with the help. No flag is
    43 characters long, so a token shaped like an id is always the argument.

    An error never echoes a value that could be a secret. argparse quotes what it
    did not understand (``unrecognized arguments: ...``), and that may be a
    session id typed in the wrong place or a connection string that a missing
    pair of quotes split apart. ``error`` raises instead of printing, so ``main``
    can answer ``--json`` with its JSON object like every other failure.
    """

    def _parse_optional(self, arg_string: str) -> Any:
        # argparse's own "is this a flag?" step. It is private, but None has meant
        # "a positional" in every Python this package supports (3.12 changed only
        # the other return's shape). tests/integration/test_cli.py pins the
        # behaviour, so a Python that changes it fails there, not in a shell.
        if is_valid_session_id(arg_string):
            return None
        return super()._parse_optional(arg_string)

    def error(self, message: str) -> NoReturn:
        raise _RefusedArguments(self.prog, self.format_usage(),
                                _SECRET_LIKE.sub("<not shown>", message))


def _wants_json(argv: list[str]) -> bool:
    """Whether ``--json`` is among the flags (before any ``--``)."""
    flags = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in flags


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("seconds must be a finite number >= 0")
    return value


def _timeout(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0 seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common_flags(*, cache: bool) -> _Parser:
    """The storage flags; ``cache``: their names stand for the cache's settings."""
    # The global options work before or after the command: SUPPRESS keeps a
    # subparser from overwriting a value given before the command.
    env = dict(_CACHE_FLAG_ENV if cache else _FLAG_ENV)
    what = ("cache table (default: cache)", "overflow container (default: cache-overflow)",
            "the cache's namespace (default: default)") if cache else (
            "sessions table (default: sessions)",
            "overflow container (default: sessions-overflow)",
            "app whose sessions to act on (default: default)")
    common = _Parser(add_help=False)
    g = common.add_argument_group("storage (flags override the environment)")
    g.add_argument("--connection-string", default=argparse.SUPPRESS, metavar="STR",
                   help=f"storage connection string [{ENV_CONNECTION_STRING}]")
    g.add_argument("--table-endpoint", default=argparse.SUPPRESS, metavar="URL",
                   help=f"Table endpoint, with DefaultAzureCredential [{ENV_TABLE_ENDPOINT}]")
    g.add_argument("--blob-endpoint", default=argparse.SUPPRESS, metavar="URL",
                   help=f"Blob endpoint, with DefaultAzureCredential [{ENV_BLOB_ENDPOINT}]")
    g.add_argument("--table-name", default=argparse.SUPPRESS, metavar="NAME",
                   help=f"{what[0]} [{env['table_name']}]")
    g.add_argument("--container-name", default=argparse.SUPPRESS, metavar="NAME",
                   help=f"{what[1]} [{env['container_name']}]")
    g.add_argument("--app-name", default=argparse.SUPPRESS, metavar="NAME",
                   help=f"{what[2]} [{env['app_name']}]")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print one JSON object on stdout")
    g.add_argument("--timeout", type=_timeout, default=argparse.SUPPRESS, metavar="SECONDS",
                   help=f"give up on a storage call after this long, retries included "
                        f"(default: {DEFAULT_TIMEOUT:g}); a wait over 1 s says what it "
                        "waits for on stderr")
    return common


def _sweep_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be deleted; delete nothing, take no lease")
    parser.add_argument("--time-budget", type=_seconds, metavar="SECONDS",
                        help=f"stop after about this long (default: no limit) "
                             f"[{ENV_SWEEP_TIME_BUDGET}]")
    parser.add_argument("--orphan-grace", type=_seconds, metavar="SECONDS", default=3600.0,
                        help="only delete orphan blobs older than this (default: 3600)")
    parser.add_argument("--max-parallel", type=_positive_int, metavar="N", default=4,
                        help="partitions swept at once (default: 4)")


def _cache_parser(sub: Any, top: argparse.ArgumentParser) -> None:
    """``tablesessions cache init|sweep|stats``: the key-value cache's storage."""
    common = _common_flags(cache=True)
    group = sub.add_parser(
        "cache", parents=[top], help="the key-value cache (TableCache): init, sweep, stats",
        epilog=_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"The same commands for a tablesessions.TableCache. Settings come from "
                    f"TableCache.from_env: the connection variables, and {ENV_CACHE_TABLE_NAME}, "
                    f"{ENV_CACHE_CONTAINER_NAME}, {ENV_CACHE_APP_NAME} (which --table-name, "
                    "--container-name and --app-name override here).")
    cache_sub = group.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")
    cache_sub.add_parser("init", parents=[common], help="create the table and the container",
                         description="Create the cache's table and overflow container if "
                                     "missing.")
    sweep = cache_sub.add_parser(
        "sweep", parents=[common], help="delete expired entries and orphan blobs",
        epilog=_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Delete the namespace's expired entries, their blobs and orphan blobs "
                    "(entries without expiry are never swept). One sweeper per namespace "
                    "at a time (a blob lease); an unfinished run resumes next time.")
    _sweep_flags(sweep)
    cache_sub.add_parser(
        "stats", parents=[common], help="count entries, expired ones and bytes",
        description="Count the namespace's entries, expired ones, ones without expiry, "
                    "stored bytes and overflowed ones. Reads no value: one query per "
                    "partition (16, plus one per further 1,000 entries).")


def _parser() -> argparse.ArgumentParser:
    common = _common_flags(cache=False)
    parser = _Parser(
        prog="tablesessions", parents=[common], epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Manage tablesessions storage: create it, sweep expired sessions, "
                    "count and inspect sessions; `tablesessions cache ...` does the same "
                    "for the key-value cache.")
    parser.add_argument("--version", action="version", version=f"tablesessions {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("init", parents=[common], help="create the table and the container",
                   description="Create the table and the overflow container if missing.")
    sweep = sub.add_parser(
        "sweep", parents=[common], help="delete expired sessions and orphan blobs",
        epilog=_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Delete expired sessions, their blobs and orphan blobs. One sweeper "
                    "runs at a time (a blob lease); an unfinished run resumes next time.")
    _sweep_flags(sweep)
    sub.add_parser("stats", parents=[common], help="count sessions, bytes and sizes",
                   description="Count sessions, expired ones, bytes, overflowed ones and a "
                               "size histogram (reads no payloads).")
    inspect = sub.add_parser(
        "inspect", parents=[common], help="show one session's metadata",
        description="Show one session's metadata (also when expired). The id is never "
                    "printed: only its row key's prefix.")
    inspect.add_argument("session_id", metavar="SESSION_ID",
                         help="the session id, or - to read it from stdin (keeps it out of "
                              "shell history and the process list)")
    inspect.add_argument("--show-data", action="store_true",
                         help="also decode and print the session's data")
    rotate = sub.add_parser(
        "rotate-keys", parents=[common], help="re-encrypt sessions under the newest key",
        description=f"Re-encrypt every session not yet under the key ring's primary (first) "
                    f"key, overflow blobs included. Keys come from {ENV_ENCRYPTION_KEYS}. "
                    "Resumable: run it again after a time-out or crash.")
    rotate.add_argument("--time-budget", type=_seconds, metavar="SECONDS",
                        help="stop after about this long (default: no limit)")
    for name, text in (("revoke", "end every session of a user (log out everywhere)"),
                       ("sessions", "list a user's live sessions (metadata only)")):
        user_cmd = sub.add_parser(name, parents=[common], help=text, description=text + ".")
        user_cmd.add_argument("--user", required=True, metavar="USER_ID",
                              help="the user id given to bind_user, or - to read it from stdin")
    _cache_parser(sub, _common_flags(cache=True))
    return parser


def _environ(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with the flags written over the variables they stand for."""
    env = dict(environ)
    for flag, name in _CACHE_FLAG_ENV if args.command == "cache" else _FLAG_ENV:
        value = getattr(args, flag, None)
        if value:
            env[name] = value
    if not getattr(args, "connection_string", None) and (
            getattr(args, "table_endpoint", None) or getattr(args, "blob_endpoint", None)):
        env.pop(ENV_CONNECTION_STRING, None)  # explicit endpoints beat an inherited string
    return env


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


class _Output:
    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr

    def result(self, obj: Mapping[str, Any], lines: list[str]) -> None:
        if self.as_json:
            self.stdout.write(json.dumps(obj, default=_jsonable, sort_keys=True) + "\n")
        else:
            self.stdout.write("\n".join(lines) + "\n")

    def fail(self, code: int, message: str, *, prefix: str = "tablesessions") -> int:
        self.stderr.write(f"{prefix}: {message}\n")
        if self.as_json:
            self.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
        return code


class _ProgressLine(logging.Handler):
    """A one-line progress bar on a TTY, fed by the sweeper's progress records."""

    WIDTH = 20

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.started = time.monotonic()
        self.shown = 0

    def emit(self, record: logging.LogRecord) -> None:
        snap = getattr(record, "sweep_progress", None)
        if not isinstance(snap, dict):
            return
        done, total = int(snap.get("done", 0)), max(int(snap.get("total", 0)), 1)
        filled = min(self.WIDTH, self.WIDTH * done // total)
        line = (f"sweeping [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} "
                f"{int(snap.get('scanned', 0)):,} expired found, "
                f"{int(snap.get('deleted', 0)):,} deleted, "
                f"{time.monotonic() - self.started:.0f}s")
        self.stream.write("\r" + line.ljust(self.shown))
        self.stream.flush()
        self.shown = len(line)

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()


@contextmanager
def _progress(stream: TextIO) -> Iterator[None]:
    """Show sweep progress on ``stream`` while inside, if it is a terminal."""
    if not stream.isatty():
        yield
        return
    logger = logging.getLogger(_SWEEPER_LOGGER)
    handler = _ProgressLine(stream)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.finish()


# -- commands --------------------------------------------------------------------


def _init(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    store.create_storage()
    out.result({"table": store.table_name, "container": store.container_name, "ready": True},
               [f"table {store.table_name!r} and container {store.container_name!r} are ready"])
    return EXIT_OK


def _sweep(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    return _sweep_with(store, args, out, "sessions")


def _sweep_with(face: SessionStore | TableCache, args: argparse.Namespace, out: _Output,
                noun: str) -> int:
    """Run ``face.sweep`` (a session store or a cache: the same sweeper) and report."""
    seconds = args.time_budget
    if seconds is None and os.environ.get(ENV_SWEEP_TIME_BUDGET):
        try:
            seconds = _seconds(os.environ[ENV_SWEEP_TIME_BUDGET])
        except argparse.ArgumentTypeError as exc:
            raise _UsageError(f"{ENV_SWEEP_TIME_BUDGET}: {exc}") from None
    budget = None if seconds is None else dt.timedelta(seconds=seconds)
    with _progress(out.stderr):
        report: SweepReport = face.sweep(dry_run=args.dry_run, time_budget=budget,
                                         orphan_grace=dt.timedelta(seconds=args.orphan_grace),
                                         max_parallel=args.max_parallel)
    if report.skipped_locked:
        code, state = EXIT_LOCKED, "skipped: another sweeper holds the lease"
    elif report.errors or not report.complete:
        code = EXIT_INCOMPLETE
        state = "incomplete: the next run resumes" if not report.errors else "finished with errors"
    else:
        code, state = EXIT_OK, "complete"
    verb = "would be deleted" if report.dry_run else "deleted"
    kind = "cache namespace" if noun == "entries" else "app"
    lines = [f"sweep of {kind} {face.config.app_name!r}"
             f"{' (dry run)' if report.dry_run else ''}: {state}"]
    lines += _table([
        (f"expired {noun} found", f"{report.scanned:,}"),
        (f"{noun} {verb}", f"{report.deleted:,}"),
        (f"blobs {verb}", f"{report.blobs_deleted:,}"),
        (f"orphan blobs {verb}", f"{report.orphans_deleted:,}"),
        ("kept (changed meanwhile)", f"{report.skipped:,}"),
        ("errors", f"{report.errors:,}"),
        ("storage requests", f"{report.requests:,}"),
        ("duration", f"{report.duration.total_seconds():.1f} s"),
    ])
    lines += [f"  error: {m}" for m in report.error_messages]
    out.result(report.to_dict(), lines)
    return code


def _stats(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    stats = store.storage_stats()
    lines = [f"app {store.config.app_name!r} in table {store.table_name!r}:"]
    lines += _table([("sessions", f"{stats.sessions:,}"), ("expired", f"{stats.expired:,}"),
                     ("bytes", f"{stats.bytes:,}"), ("overflowed", f"{stats.overflowed:,}")])
    lines.append("  sessions by stored size:")
    lines += _table([(label, f"{count:,}") for label, count in stats.histogram.items()],
                    indent=4)
    out.result(stats.to_dict(), lines)
    return EXIT_OK


def _inspect(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    session_id = sys.stdin.readline().strip() if args.session_id == "-" else args.session_id
    if not is_valid_session_id(session_id):
        # The value is never echoed: it may be a real (if mangled) session token.
        raise _UsageError("that is not a session id (43 URL-safe base64 characters); "
                          "the value is not shown")
    info = store.inspect(session_id, show_data=args.show_data)
    if info is None:
        return out.fail(EXIT_INCOMPLETE, "no session with that id (the value is not shown)")
    lines = [f"session {info['row_key_prefix']}... (row key prefix)"]
    rows = []
    for key, value in info.items():
        if key in ("row_key_prefix", "data"):
            continue
        if isinstance(value, Mapping):
            text = ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
        else:
            text = _plain(value)
        rows.append((key.replace("_", " "), text))
    lines += _table(rows)
    if "data" in info:
        lines.append("  data:")
        text = json.dumps(info["data"], default=_jsonable, indent=2, sort_keys=True)
        lines.extend("    " + line for line in text.splitlines())
    out.result(info, lines)
    return EXIT_OK


def _rotate(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    if store.config.key_ring is None:
        raise _UsageError(f"rotate-keys needs keys in {ENV_ENCRYPTION_KEYS} "
                          "(id:base64key,...; the first is the primary)")
    report = store.rotate_keys(time_budget=args.time_budget)
    state = "complete" if report.complete and not report.errors else "incomplete: run it again"
    lines = [f"key rotation of app {store.config.app_name!r} to key "
             f"{report.primary!r}: {state}"]
    lines += _table([("sessions scanned", f"{report.scanned:,}"),
                     ("re-encrypted", f"{report.rotated:,}"),
                     ("skipped (changed meanwhile)", f"{report.skipped:,}"),
                     ("errors", f"{report.errors:,}")])
    out.result(report.to_dict(), lines)
    return EXIT_OK if report.complete and not report.errors else EXIT_INCOMPLETE


def _user_id(args: argparse.Namespace) -> str:
    user = sys.stdin.readline().strip() if args.user == "-" else args.user
    if not user:
        raise _UsageError("--user needs a non-empty user id")
    return str(user)


def _revoke(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    store.revoke_user(_user_id(args))
    out.result({"revoked": True}, ["revoked: every session of that user has ended"])
    return EXIT_OK


def _sessions(store: SessionStore, args: argparse.Namespace, out: _Output) -> int:
    found = store.user_sessions(_user_id(args))
    lines = [f"{len(found)} live session(s)"]
    lines += [f"  {s['session']}...  created {_plain(s['created_at'])}  "
              f"expires {_plain(s['expires_at'])}  {s['size']} bytes"
              f"{'  (overflowed)' if s['overflowed'] else ''}" for s in found]
    out.result({"sessions": found}, lines)
    return EXIT_OK


def _cache_init(cache: TableCache, args: argparse.Namespace, out: _Output) -> int:
    cache.create_storage()
    out.result({"table": cache.table_name, "container": cache.container_name, "ready": True},
               [f"cache table {cache.table_name!r} and container {cache.container_name!r} "
                "are ready"])
    return EXIT_OK


def _cache_sweep(cache: TableCache, args: argparse.Namespace, out: _Output) -> int:
    return _sweep_with(cache, args, out, "entries")


def _cache_stats(cache: TableCache, args: argparse.Namespace, out: _Output) -> int:
    stats = cache.storage_stats()
    lines = [f"cache namespace {cache.app_name!r} in table {cache.table_name!r}:"]
    lines += _table([("entries", f"{stats.entries:,}"), ("expired", f"{stats.expired:,}"),
                     ("without expiry", f"{stats.no_expiry:,}"),
                     ("bytes", f"{stats.bytes:,}"), ("overflowed", f"{stats.overflowed:,}"),
                     ("native ints", f"{stats.native_ints:,}")])
    out.result(stats.to_dict(), lines)
    return EXIT_OK


def _plain(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        return str(value)
    return str(_jsonable(value))


def _table(rows: list[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max((len(label) for label, _ in rows), default=0)
    return [f"{' ' * indent}{label:<{width}}  {value}" for label, value in rows]


_COMMANDS: dict[str, Callable[[SessionStore, argparse.Namespace, _Output], int]] = {
    "init": _init, "sweep": _sweep, "stats": _stats, "inspect": _inspect,
    "rotate-keys": _rotate, "revoke": _revoke, "sessions": _sessions,
}
_CACHE_COMMANDS: dict[str, Callable[[TableCache, argparse.Namespace, _Output], int]] = {
    "init": _cache_init, "sweep": _cache_sweep, "stats": _cache_stats,
}


#: The settings a configuration error may name, and the flag and variable to fix it with.
_SETTING_FLAGS = (
    ("table_name", "--table-name", ENV_TABLE_NAME),
    ("container_name", "--container-name", ENV_CONTAINER_NAME),
    ("app_name", "--app-name", ENV_APP_NAME),
)
_CACHE_SETTING_FLAGS = (
    ("table_name", "--table-name", ENV_CACHE_TABLE_NAME),
    ("container_name", "--container-name", ENV_CACHE_CONTAINER_NAME),
    ("app_name", "--app-name", ENV_CACHE_APP_NAME),
)
#: What each command is waiting for, for the notice after a second without an answer.
_WAITING_FOR = {
    "init": "create the table and the container", "stats": "list the sessions",
    "inspect": "read the session", "revoke": "revoke the user's sessions",
    "sessions": "list the user's sessions", "sweep": "sweep expired sessions",
    "rotate-keys": "re-encrypt sessions",
    "cache init": "create the cache's table and container",
    "cache sweep": "sweep expired cache entries", "cache stats": "list the cache's entries",
}


def _config_message(exc: Exception, *, cache: bool = False) -> str:
    """Name the flag and variable behind a bad setting; connection hints only when the
    connection is what is missing."""
    text = str(exc)
    for setting, flag, env in _CACHE_SETTING_FLAGS if cache else _SETTING_FLAGS:
        if text.startswith(setting + " "):
            return f"configuration error: {flag} / {env}: {text[len(setting) + 1:]}"
    if ENV_CONNECTION_STRING in text:
        return (f"configuration error: {text} (flags: --connection-string, or "
                "--table-endpoint and --blob-endpoint)")
    return f"configuration error: {text}"


def _policy(timeout: float) -> RetryPolicy:
    """The retry policy of every storage call the command makes: three quick attempts
    (a blip is retried, a refused connection fails in well under a second), with
    ``timeout`` as each call's deadline. Not the library's 60 s background policy:
    someone is waiting at a terminal, and a cron job can pass ``--timeout 60``."""
    return RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=1.0, deadline=timeout)


@contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """The command reports every failure itself: without this, Python's last-resort
    handler would print the library's WARNINGs too, so each error would show twice."""
    logger = logging.getLogger("tablesessions")
    if logging.getLogger().handlers or logger.handlers:
        yield  # the caller configured logging: leave it alone
        return
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Run the ``tablesessions`` command; return its exit code (see ``--help``)."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except _RefusedArguments as refused:
        # argparse's own shape on stderr (usage, then "prog: error: ..."), and
        # with --json the same JSON object as any other failure on stdout.
        sys.stderr.write(refused.usage)
        return _Output(_wants_json(argv), sys.stdout, sys.stderr).fail(
            EXIT_USAGE, refused.message, prefix=f"{refused.prog}: error")
    except SystemExit as exc:  # --help or --version, already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = _Output(bool(getattr(args, "json", False)), sys.stdout, sys.stderr)
    timeout: float = getattr(args, "timeout", None) or DEFAULT_TIMEOUT
    env = _environ(args, os.environ)
    is_cache = args.command == "cache"
    command = f"cache {args.cache_command}" if is_cache else args.command
    waiting = Waiting(_WAITING_FOR.get(command, "answer"), timeout, stream=out.stderr)
    policy = _policy(timeout)
    face: SessionStore | TableCache
    try:
        factory = TableCache.from_env if is_cache else SessionStore.from_env
        face = factory(env, retry=policy, background_retry=policy,
                       client_options={"raw_response_hook": waiting.on_response})
    except (ValueError, TypeError) as exc:
        return out.fail(EXIT_USAGE, _config_message(exc, cache=is_cache))
    target = waiting.target = Target.from_env(env, face.table_name, face.container_name,
                                              cache=is_cache)
    started = time.monotonic()
    try:
        with face, waiting, _quiet_library_logs():
            if isinstance(face, TableCache):
                return _CACHE_COMMANDS[args.cache_command](face, args, out)
            return _COMMANDS[args.command](face, args, out)
    except _UsageError as exc:
        return out.fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:
        return out.fail(EXIT_INTERRUPTED, "interrupted")
    except Exception as exc:
        message = describe(exc, target, time.monotonic() - started)
        if message is not None:
            return out.fail(EXIT_STORAGE, message)
        if isinstance(exc, TableSessionsError):
            return out.fail(EXIT_INCOMPLETE, f"error: {exc}")
        raise

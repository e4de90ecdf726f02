"""Validation of Django's ``settings.TABLESESSIONS``, without Django and without I/O.

``manage.py check`` reports these problems (``tablesessions.E001``...), and
``tablesessions.django.get_store`` raises the first one, so a typo is named the
way the user wrote it, at start-up, not on the first request that touches a
session.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._base import make_config
from ..config import (
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_TABLE_ENDPOINT,
    StoreConfig,
    settings_from_env,
)
from .cookies import OPTIONS_SETTING, PREFIX, SETTING_NAMES

#: The keys of ``TABLESESSIONS``, as users write them (no prefix).
KEYS = tuple(name.removeprefix(PREFIX) for name in (*SETTING_NAMES, OPTIONS_SETTING))
_TIMEOUTS = frozenset(name.removeprefix(PREFIX) for name in SETTING_NAMES
                      if name.endswith("_SECONDS"))
_OPTIONS = OPTIONS_SETTING.removeprefix(PREFIX)
_CONNECTION = tuple(n.removeprefix(PREFIX)
                    for n in (ENV_CONNECTION_STRING, ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT))


@dataclass(frozen=True)
class Problem:
    """One misconfiguration: a check id, a message naming the setting, a hint."""

    id: str
    message: str
    hint: str | None = None


def _seconds(value: object) -> float | None:
    """Seconds from a number, a numeric string or a timedelta; None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _type_problems(configured: Mapping[Any, Any]) -> list[Problem]:
    out: list[Problem] = []
    for key, value in configured.items():
        if key not in KEYS or value is None:
            continue
        where = f"TABLESESSIONS[{key!r}]"
        if key == _OPTIONS:
            if not isinstance(value, Mapping):
                out.append(Problem("tablesessions.E003", f"{where} must be a dict of "
                                   f"StoreConfig options, not {type(value).__name__}"))
                continue
            fields = StoreConfig.__dataclass_fields__
            for name in sorted(str(k) for k in value if k not in fields):
                out.append(Problem("tablesessions.E002", f"{where} has the unknown option "
                                   f"{name!r}", _did_you_mean(name, fields)))
        elif key in _TIMEOUTS:
            seconds = _seconds(value)
            if seconds is None or not math.isfinite(seconds):
                out.append(Problem("tablesessions.E003", f"{where} must be a number of seconds "
                                   f"or a timedelta, not {value!r}"))
            elif seconds <= 0:
                out.append(Problem("tablesessions.E004", f"{where} must be positive, "
                                   f"not {value!r}"))
        elif not isinstance(value, str):
            out.append(Problem("tablesessions.E003", f"{where} must be a string, not "
                               f"{type(value).__name__}"))
    return out


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name.upper() if known is KEYS else name, list(known), n=1)
    suffix = f"Did you mean {close[0]!r}? " if close else ""
    return f"{suffix}Known: {', '.join(sorted(known))}."


def problems(configured: object, environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem of a ``TABLESESSIONS`` value (None: not set), checked
    against the environment for the connection. Builds a ``StoreConfig`` to
    validate values, which makes no storage call."""
    env = os.environ if environ is None else environ
    if configured is None:
        configured = {}
    if not isinstance(configured, Mapping):
        return [Problem("tablesessions.E001", "TABLESESSIONS must be a dict, not "
                        f"{type(configured).__name__}",
                        'e.g. TABLESESSIONS = {"CONNECTION_STRING": "..."}')]
    out = [Problem("tablesessions.E002", f"TABLESESSIONS has the unknown key {key!r}",
                   _did_you_mean(str(key), KEYS))
           for key in configured if key not in KEYS]
    out += _type_problems(configured)
    malformed = bool(out)  # values are only worth checking once keys and types are right
    conn, table, blob = (configured.get(k) for k in _CONNECTION)
    if conn is None and (table is None) != (blob is None):
        out.append(Problem("tablesessions.E005", "TABLESESSIONS sets only one of TABLE_ENDPOINT "
                           "and BLOB_ENDPOINT", "set both (with a token credential), or "
                           "CONNECTION_STRING"))
    elif not (conn or table or blob) and not env.get(ENV_CONNECTION_STRING) and not (
            env.get(ENV_TABLE_ENDPOINT) and env.get(ENV_BLOB_ENDPOINT)):
        out.append(Problem("tablesessions.E005", "no storage connection is configured",
                           'set TABLESESSIONS["CONNECTION_STRING"] (or TABLE_ENDPOINT and '
                           f"BLOB_ENDPOINT), or the {ENV_CONNECTION_STRING} environment variable"))
    if malformed:
        return out
    try:
        _dry_config(configured, env)
    except (TypeError, ValueError) as exc:
        out.append(Problem("tablesessions.E004", f"TABLESESSIONS: {exc}"))
    return out


def _dry_config(configured: Mapping[str, Any], env: Mapping[str, str]) -> StoreConfig:
    """The StoreConfig the store would get (settings over environment), built
    without clients: every value check, no I/O."""
    merged: dict[str, Any] = {k: v for k, v in env.items() if k in SETTING_NAMES}
    for key, value in configured.items():
        if key != _OPTIONS and value is not None:
            seconds = _seconds(value) if key in _TIMEOUTS else None
            merged[PREFIX + key] = str(seconds if seconds is not None else value)
    kwargs = settings_from_env(merged)
    kwargs.update(dict(configured.get(_OPTIONS) or {}))
    idle = kwargs.pop("idle_timeout", None)
    return make_config(kwargs.pop("table_name", "sessions"),
                       kwargs.pop("container_name", "sessions-overflow"),
                       kwargs.pop("app_name", "default"),
                       idle if idle is not None else StoreConfig.idle_timeout,
                       kwargs.pop("absolute_timeout", None), kwargs)


__all__ = ["KEYS", "Problem", "problems"]

"""Flask-Caching backend: ``CACHE_TYPE = "tablesessions.flask_caching.TableCache"``.

::

    app.config.update(
        CACHE_TYPE="tablesessions.flask_caching.TableCache",
        CACHE_TABLESESSIONS_CONNECTION_STRING=conn_str,   # or *_TABLE_ENDPOINT/*_BLOB_ENDPOINT
        CACHE_DEFAULT_TIMEOUT=300,
        SECRET_KEY="...",               # signs the pickled values (or CACHE_TABLESESSIONS_SECRET)
    )
    cache = Cache(app)

It is :class:`tablesessions.cachelib.TableCache` with Flask-Caching's ``factory``, which
reads the ``CACHE_*`` config. This module's import path must not contain the word
"cachelib": Flask-Caching 2.x calls a ``CACHE_TYPE`` whose path does with the bare
constructor options, skipping ``factory`` and so the app's config and ``SECRET_KEY``.

Config read by :meth:`TableCache.factory` (``CACHE_OPTIONS`` entries win over them):

- ``CACHE_DEFAULT_TIMEOUT``, ``CACHE_KEY_PREFIX``, ``CACHE_IGNORE_ERRORS``,
  ``CACHE_ARGS``, ``CACHE_OPTIONS``: as for every Flask-Caching backend;
- ``CACHE_TABLESESSIONS_CONNECTION_STRING``, or ``CACHE_TABLESESSIONS_TABLE_ENDPOINT`` and
  ``CACHE_TABLESESSIONS_BLOB_ENDPOINT`` (credential: ``CACHE_OPTIONS["credential"]``,
  default ``DefaultAzureCredential``), or ``CACHE_TABLESESSIONS_ACCOUNT_NAME``; none of
  them: the ``TABLESESSIONS_*`` environment variables;
- ``CACHE_TABLESESSIONS_TABLE_NAME``, ``..._CONTAINER_NAME``, ``..._APP_NAME``;
- ``CACHE_TABLESESSIONS_SECRET``, else ``SECRET_KEY`` with ``SECRET_KEY_FALLBACKS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._extras import require

require("flask-caching", "cachelib", "flask", "flask_caching", integration="flask_caching")

from flask_caching.backends.base import BaseCache as _FlaskCachingBase

from . import cachelib as _cachelib

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["CONFIG_PREFIX", "TableCache"]

#: Prefix of this backend's own config keys.
CONFIG_PREFIX = "CACHE_TABLESESSIONS_"
_CONFIG_OPTIONS = ("connection_string", "table_endpoint", "blob_endpoint", "account_name",
                   "table_name", "container_name", "app_name")


class TableCache(_FlaskCachingBase, _cachelib.TableCache):
    """:class:`tablesessions.cachelib.TableCache` for Flask-Caching's ``CACHE_TYPE``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Flask-Caching's BaseCache.__init__ would reset the options cachelib's sets up.
        _cachelib.TableCache.__init__(self, *args, **kwargs)

    @classmethod
    def factory(cls, app: Flask, config: dict[str, Any], args: list[Any],
                kwargs: dict[str, Any]) -> TableCache:
        """Build the cache from the app's ``CACHE_*`` config (Flask-Caching calls this).

        :raises ValueError: when neither ``CACHE_TABLESESSIONS_SECRET`` nor ``SECRET_KEY``
            is set: the pickled values must be signed.
        """
        options = dict(kwargs)  # default_timeout, ignore_delete_many_errors, CACHE_OPTIONS
        options.setdefault("key_prefix", config.get("CACHE_KEY_PREFIX"))
        for name in _CONFIG_OPTIONS:
            value = config.get(CONFIG_PREFIX + name.upper())
            if value is not None:
                options.setdefault(name, value)
        if "secret" not in options:
            own = config.get(CONFIG_PREFIX + "SECRET")
            if own:
                options["secret"] = own
            elif config.get("SECRET_KEY"):
                options["secret"] = config["SECRET_KEY"]
                options.setdefault("secret_fallbacks", config.get("SECRET_KEY_FALLBACKS") or ())
            else:
                raise ValueError(
                    "tablesessions.flask_caching signs the values it pickles: set SECRET_KEY "
                    f"or {CONFIG_PREFIX}SECRET")
        return cls(*args, **options)

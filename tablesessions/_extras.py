"""Name the pip extra to install when an integration's framework is missing (issue 17).

Without this, ``import tablesessions.django`` on a machine without Django failed
on whichever of Django's own dependencies it imported first (``No module named
'asgiref'``), naming neither Django nor the fix.
"""

from __future__ import annotations

import importlib.util


def require(extra: str, *modules: str, integration: str | None = None) -> None:
    """Check that each top-level module is importable, before the integration imports it.

    :param extra: the ``tablesessions[...]`` extra that installs them.
    :param integration: the ``tablesessions.*`` module asking, when its name is not
        the extra's (``flask_caching`` needs the ``flask-caching`` extra).
    :raises ModuleNotFoundError: naming the missing module and the ``pip install``
        command; its ``name`` is the missing module, as Python's own error has it.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(
                f"tablesessions.{integration or extra} needs {module}, which is not installed: "
                f'pip install "tablesessions[{extra}]"', name=module)

"""Django is configured once per process: every Django test module calls
:func:`configure` before importing anything that needs settings, so they can
run in one pytest process in any order."""

from __future__ import annotations

import django
from django.conf import settings

from .helpers import SECRET


def configure() -> None:
    """The settings of the framework suite's Django app (idempotent)."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY=SECRET,
        ROOT_URLCONF="tests.frameworks.test_django",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="tablesessions.django",
        SESSION_COOKIE_SECURE=True,
        USE_TZ=True,
        DATABASES={},
    )
    django.setup()

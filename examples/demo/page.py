"""What both demo apps share: the session's shape, the page, and request parsing.

Each app keeps only its framework's glue, so the two behave identically.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

_USER = re.compile(r"[A-Za-z0-9_-]{1,32}")


def state(instance: str, framework: str, session: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON the scripted client reads: who is logged in, the counter, the upload."""
    upload = session.get("upload")
    return {"instance": instance, "framework": framework, "user": session.get("user"),
            "count": session.get("count", 0),
            "upload_bytes": len(upload) if isinstance(upload, bytes) else 0}


def login_name(body: bytes) -> str:
    """The ``user`` form field, restricted to a safe short name (default ``guest``)."""
    values = parse_qs(body.decode("utf-8", "replace")).get("user", [])
    name = values[0].strip() if values else ""
    return name if _USER.fullmatch(name) else "guest"


def wants_json(accept: str | None) -> bool:
    """The scripted client asks for JSON; a browser's form post gets a redirect."""
    return "application/json" in (accept or "")


def render(data: Mapping[str, Any], other_url: str | None) -> str:
    """The page a browser sees: the session as this instance reads it, and forms."""
    user = data["user"]
    who = f"Signed in as <b id='user'>{html.escape(user)}</b>" if user else (
        "<span id='user'>anonymous</span>")
    hop = (f"<p><a id='other' href='{html.escape(other_url)}'>Open the other instance</a></p>"
           if other_url else "")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tablesessions demo: {data['instance']}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Instance <span id="instance">{data['instance']}</span>
 (<span id="framework">{data['framework']}</span>)</h1>
<p>{who}. Counter: <b id="count">{data['count']}</b>.
 Upload: <span id="upload">{data['upload_bytes']}</span> bytes.</p>
<form method="post" action="/login"><input name="user" id="name" value="alice">
 <button id="login">Log in</button></form>
<form method="post" action="/count"><button id="increment">Count +1</button></form>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
{hop}
<p><small>The session lives in Azure Table Storage (Azurite here); the cookie carries
 only its signed id, so every instance sharing the store and the secret sees it.</small></p>
</body></html>"""

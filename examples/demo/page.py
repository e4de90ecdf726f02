"""What both demo apps share: the session's shape, the page, and request parsing.

Each app keeps only its framework's glue, so the two behave identically.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from examples.demo.meter import Calls

_USER = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: The largest upload the demo keeps (the store's own limit is 128 MiB).
MAX_UPLOAD = 8_000_000
#: What the page's "random bytes" button uploads: past the 704 KB inline budget.
GENERATED_UPLOAD = 2_000_000


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


def upload_bytes(content_type: str | None, body: bytes) -> bytes:
    """The uploaded bytes: a browser form's file (multipart) or generated random
    bytes, or the raw body the scripted client posts. Both apps share this, so
    neither needs a multipart library."""
    if (content_type or "").startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + (content_type or "").encode("latin-1") + b"\r\n\r\n" + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file" and part.get_filename():
                data = part.get_payload(decode=True)
                return bytes(data)[:MAX_UPLOAD] if isinstance(data, bytes) else b""
        return b""
    if (content_type or "").startswith("application/x-www-form-urlencoded"):
        wanted = parse_qs(body.decode("ascii", "replace")).get("generate", ["0"])[0]
        size = int(wanted) if wanted.isdigit() else 0
        return os.urandom(min(size, MAX_UPLOAD))  # incompressible: it must overflow
    return body[:MAX_UPLOAD]


def wants_json(accept: str | None) -> bool:
    """The scripted client asks for JSON; a browser's form post gets a redirect."""
    return "application/json" in (accept or "")


def render(data: Mapping[str, Any], other_url: str | None, *, calls: Calls | None = None,
           previous: tuple[str, Calls] | None = None, pid: int | None = None) -> str:
    """The page a browser sees: the session as this instance reads it, forms, and a
    line saying which instance served it and how many storage calls it made."""
    user = data["user"]
    who = f"Signed in as <b id='user'>{html.escape(user)}</b>" if user else (
        "<span id='user'>anonymous</span>")
    hop = (f"<p><a id='other' href='{html.escape(other_url)}'>Open the other instance</a></p>"
           if other_url else "")
    calls = calls or Calls()
    before = (f" The request before it on this instance, <span id='previous-request'>"
              f"{html.escape(previous[0])}</span>, made <span id='previous-calls'>"
              f"{previous[1].text()}</span> (its save included)." if previous else "")
    served = (f"<p id='served'>Served by instance <b id='served-by'>{data['instance']}</b> "
              f"({data['framework']}{f', pid {pid}' if pid else ''}): this page made "
              f"<span id='calls'>{calls.text()}</span> to storage so far (a save, if the "
              f"session changed, follows the response).{before}</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tablesessions demo: {data['instance']}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Instance <span id="instance">{data['instance']}</span>
 (<span id="framework">{data['framework']}</span>)</h1>
{served}
<p>{who}. Counter: <b id="count">{data['count']}</b>.
 Upload: <span id="upload">{data['upload_bytes']}</span> bytes.</p>
<form method="post" action="/login"><input name="user" id="name" value="alice">
 <button id="login">Log in</button></form>
<form method="post" action="/count"><button id="increment">Count +1</button></form>
<form method="post" action="/upload" enctype="multipart/form-data">
 <input type="file" name="file" id="file"> <button id="upload-file">Upload the file</button>
 </form>
<form method="post" action="/upload"><input type="hidden" name="generate"
 value="{GENERATED_UPLOAD}"><button id="upload-random">Upload {GENERATED_UPLOAD:,} random
 bytes</button> (over the 704 KB an entity holds: the session overflows to a blob)</form>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
{hop}
<p><small>The session lives in Azure Table Storage (Azurite here); the cookie carries
 only its signed id, so every instance sharing the store and the secret sees it.</small></p>
</body></html>"""

"""Session data for the benchmarks: realistic JSON-like content, never zero bytes.

A web session is mostly small nested dicts and lists of short strings and
numbers: the signed-in user, their roles, a CSRF token, flash messages, a cart
and recently viewed items. :func:`session_data` builds that shape from a
seeded generator, growing the cart until the data's compact JSON encoding
reaches the target size, so "a 1 KiB session" means 1 KiB of JSON. It
compresses like real JSON (zlib level 1 takes it to roughly a quarter), which
is why the library stores a 64 KiB session in about 16 KB.

Overflow sessions hold :func:`incompressible` bytes (``os.urandom``-like,
seeded), as an uploaded image or a cached document would.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

KIB = 1024
MIB = 1024 * 1024

_WORDS = (
    "alpha", "bravo", "cotton", "denim", "linen", "wool", "oak", "walnut", "steel", "copper",
    "brass", "amber", "slate", "ivory", "indigo", "crimson", "olive", "navy", "coral", "sand",
    "stone", "river", "forest", "meadow", "harbor", "summit", "valley", "classic", "modern",
    "compact", "deluxe", "travel", "studio", "garden", "kitchen", "office", "outdoor",
    "premium",
)
_CATEGORIES = ("shoes", "shirts", "bags", "lamps", "mugs", "books", "chairs", "tables")


def _json_size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":"), default=str).encode("utf-8"))


def _item(rng: random.Random, n: int) -> dict[str, Any]:
    name = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4))).title()
    return {
        "sku": f"{rng.choice(_CATEGORIES)[:3].upper()}-{rng.randint(10000, 99999)}",
        "name": name,
        "qty": rng.randint(1, 4),
        "price": round(rng.uniform(3, 400), 2),
        "category": rng.choice(_CATEGORIES),
        "added": f"2025-06-{1 + n % 28:02d}T{n % 24:02d}:{rng.randint(0, 59):02d}:00Z",
        "options": {"size": rng.choice(["S", "M", "L", "XL"]),
                    "colour": rng.choice(_WORDS[13:24])},
    }


def session_data(target_bytes: int, seed: int = 1) -> dict[str, Any]:
    """Return session data whose compact JSON encoding is about ``target_bytes``
    (at least that, and within one cart item above it)."""
    rng = random.Random(seed)
    data: dict[str, Any] = {
        "user": {"id": rng.randint(1, 10**6), "name": "Alice Example",
                 "email": "alice@example.com", "locale": "en-GB", "tz": "Europe/London"},
        "roles": ["customer", "newsletter"],
        "csrf": rng.getrandbits(256).to_bytes(32, "big").hex(),
        "flash": [],
        "login_at": dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.timezone.utc),
        "visits": 1,
        "cart": [],
        "recent": [rng.randint(1000, 9999) for _ in range(8)],
    }
    cart: list[dict[str, Any]] = data["cart"]
    while _json_size(data) < target_bytes:
        cart.append(_item(rng, len(cart)))
    if len(cart) > 1 and _json_size(data) > target_bytes * 1.05:
        cart.pop()  # the last item overshot: pad the rest with a note instead
    shortfall = target_bytes - _json_size(data)
    if shortfall > 0:
        data["note"] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(shortfall))
        data["note"] = data["note"][: len(data["note"]) - max(0, _json_size(data) - target_bytes)]
    return data


def json_size(data: dict[str, Any]) -> int:
    """The compact JSON size of ``data`` (datetimes as ISO strings): what "size" means here."""
    return _json_size(data)


def incompressible(size: int, seed: int = 7) -> bytes:
    """``size`` seeded pseudo-random bytes: zlib cannot shrink them."""
    return random.Random(seed).randbytes(size)

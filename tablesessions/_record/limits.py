"""Azure Table and Blob service limits, enforced client-side.

Azurite is not the oracle for these: it skips some checks and applies one more
strictly than Azure (see shared AZURE-FACTS.md), so every number the library
relies on lives here, with its source.
"""

from __future__ import annotations

#: The service rejects a 65,536-byte binary property and accepts 64,000, although
#: the docs say "64 KiB". Budget the measured value.
MAX_PROPERTY_BYTES = 64_000

#: The whole entity, by the service's size formula.
MAX_ENTITY_BYTES = 1024 * 1024

#: Custom properties per entity; PartitionKey, RowKey and Timestamp make 255.
MAX_CUSTOM_PROPERTIES = 252

#: Entity group transactions: one partition, at most 100 operations, never empty.
MAX_BATCH_OPERATIONS = 100

#: An entity group transaction's body: at most 4 MiB (Cosmos Table: 2 MB).
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024

#: Keys: the docs say 1 KiB, Azurite rejects > 512 chars, Cosmos Table allows 255 bytes.
MAX_KEY_CHARS = 255

#: Characters the service forbids in PartitionKey and RowKey.
FORBIDDEN_KEY_CHARS = frozenset("/\\#?") | frozenset(
    chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]
)

#: Azurite measures the 1 MiB on update as the JSON body, where base64 inflates
#: binary by 4/3: 1,048,576 * 3/4 = 786,432 raw bytes before the other columns.
#: 11 chunks of 64,000 = 704,000 bytes leaves ~80 KB of headroom there, and on
#: the real service (binary counts as bytes + 4 per property) it is 67% of 1 MiB.
MAX_INLINE_BYTES = 11 * MAX_PROPERTY_BYTES

#: A single Put Blob covers 64 MiB with the SDK defaults; larger uploads are
#: split into blocks by the SDK (more round trips, same semantics).
MAX_SINGLE_PUT_BYTES = 64 * 1024 * 1024

#: Page size of a table query (the service caps it at 1,000).
MAX_QUERY_PAGE = 1000


def check_key(value: str, what: str) -> str:
    """Return ``value`` if it is a valid PartitionKey/RowKey, else raise ``ValueError``."""
    if not value or len(value) > MAX_KEY_CHARS:
        raise ValueError(f"{what} must be 1..{MAX_KEY_CHARS} characters, got {len(value)}")
    bad = FORBIDDEN_KEY_CHARS.intersection(value)
    if bad:
        raise ValueError(f"{what} contains characters the Table service forbids: {sorted(bad)!r}")
    return value

"""Storage keys shared by every record: partitions per app, log tags.

A record's RowKey is a SHA-256 hex digest (of a session id, or of a cache
key), never the raw value; the PartitionKey spreads an app's rows over 16
partitions by the digest's first hex digit.
"""

from __future__ import annotations


def partition_key_for(app_name: str, row_key: str) -> str:
    """Return the PartitionKey: the app name plus the first hex digit of the row key.

    16 partitions per app: Azure serves about 2,000 entities/s per partition, so
    16 reach 32,000/s, past the 20,000 transactions/s account limit. More
    partitions would only make the sweeper's per-partition batches smaller.
    """
    return f"{app_name}-{row_key[0]}"


PARTITION_SUFFIXES = "0123456789abcdef"


def log_id(row_key: str) -> str:
    """Return a short, non-secret tag for logs: a prefix of the row key hash."""
    return row_key[:12]

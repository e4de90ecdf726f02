from __future__ import annotations

import base64
import hashlib

import pytest

from tablesessions._record.keys import log_id, partition_key_for
from tablesessions._sessions.ids import ID_LENGTH, is_valid_session_id, new_session_id, row_key_for


def test_new_ids_carry_256_random_bits_and_are_url_safe() -> None:
    ids = {new_session_id() for _ in range(2000)}
    assert len(ids) == 2000
    for sid in list(ids)[:50]:
        assert len(sid) == ID_LENGTH == 43
        assert len(base64.urlsafe_b64decode(sid + "=")) == 32
        assert is_valid_session_id(sid)


@pytest.mark.parametrize(
    "bad",
    [
        "", "a" * 42, "a" * 44, "a" * 42 + "#", "a" * 42 + "/", "a" * 42 + "=", "a" * 42 + "?",
        "a" * 42 + "\\", "a" * 42 + "\x00", "a" * 42 + "é", " " + "a" * 42,
        # 43 chars encode 258 bits: a last char with stray low bits is a second
        # spelling of some id and is refused.
        "A" * 42 + "B",
        None, 42, b"a" * 43, ["a" * 43],
    ],
)
def test_malformed_ids_are_refused(bad: object) -> None:
    assert not is_valid_session_id(bad)


def test_keys_never_contain_the_raw_id() -> None:
    sid = new_session_id()
    rk = row_key_for(sid)
    assert rk == hashlib.sha256(sid.encode()).hexdigest()
    assert sid not in rk
    pk = partition_key_for("shop", rk)
    assert pk == f"shop-{rk[0]}"
    assert log_id(rk) == rk[:12] and sid not in log_id(rk)

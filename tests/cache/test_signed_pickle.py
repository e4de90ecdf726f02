"""tablesessions.signed_pickle: nothing reaches pickle.loads unless its tag verifies."""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle

import pytest

from tablesessions.exceptions import TableSessionsError
from tablesessions.signed_pickle import MAGIC, PickleSigner, Unverified

from .planted import RAN, Payload

SECRET_DATA = "card-4111-1111-1111-1111"
SECRET = "s3cret-key-material"



def _refused(signer: PickleSigner, data: bytes) -> None:
    with pytest.raises(Unverified):
        signer.loads(data)


def test_roundtrip_arbitrary_objects(loads_calls: list[bytes]) -> None:
    s = PickleSigner(SECRET)
    value = {"a": (1, 2), "f": len, "cls": PickleSigner, "b": b"\x00" * 100, "n": None}
    assert s.loads(s.dumps(value)) == value
    assert len(loads_calls) == 1


def test_format_is_versioned_prefix_tag_then_pickle() -> None:
    blob = PickleSigner(SECRET).dumps([1, 2])
    assert blob[:4] == MAGIC == b"TSP1"
    assert pickle.loads(blob[36:]) == [1, 2]
    assert len(blob) == 4 + 32 + len(pickle.dumps([1, 2], pickle.HIGHEST_PROTOCOL))


def test_signed_payload_does_run_when_loaded() -> None:
    # The control for the refusal tests below: a verified payload is unpickled, so it runs.
    s = PickleSigner(SECRET)
    assert s.loads(s.dumps(Payload())) == "payload ran"
    assert RAN == ["payload ran"]


def test_unsigned_pickle_refused_and_never_loaded(loads_calls: list[bytes]) -> None:
    s = PickleSigner(SECRET)
    raw = pickle.dumps(Payload())
    for data in (raw, MAGIC + raw, MAGIC + bytes(32) + raw, MAGIC + raw[:32] + raw):
        _refused(s, data)
    assert loads_calls == []
    assert RAN == []


def test_every_tampered_byte_refused(loads_calls: list[bytes]) -> None:
    s = PickleSigner(SECRET)
    blob = s.dumps(Payload())
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[i] ^= bit
            _refused(s, bytes(tampered))
    assert loads_calls == [] and RAN == []


def test_truncated_and_extended_refused(loads_calls: list[bytes]) -> None:
    s = PickleSigner(SECRET)
    blob = s.dumps(Payload())
    for n in range(len(blob)):
        _refused(s, blob[:n])
    _refused(s, blob + b".")
    assert loads_calls == [] and RAN == []


def test_wrong_secret_and_wrong_context_refused(loads_calls: list[bytes]) -> None:
    blob = PickleSigner(SECRET).dumps(Payload())
    _refused(PickleSigner(SECRET + "x"), blob)
    _refused(PickleSigner(SECRET.encode() + b"\x00"), blob)
    _refused(PickleSigner(SECRET, context="django-cache"), blob)
    assert PickleSigner(SECRET.encode()).loads(PickleSigner(SECRET).dumps(7)) == 7  # str == utf-8
    assert loads_calls == [pickle.dumps(7, pickle.HIGHEST_PROTOCOL)]
    assert RAN == []


def test_unknown_format_version_refused() -> None:
    s = PickleSigner(SECRET)
    body = pickle.dumps("v")
    # A correct tag under our key, but behind another version's prefix: not this format.
    tag = hmac.new(s._signing_key, b"TSP2" + body, hashlib.sha256).digest()
    _refused(s, b"TSP2" + tag + body)


def test_fallback_verifies() -> None:
    old = PickleSigner("old").dumps("v")
    assert PickleSigner("new", ["old"]).loads(old) == "v"
    assert PickleSigner("new", ("older", b"old")).loads(old) == "v"
    _refused(PickleSigner("new"), old)  # retiring a fallback makes its values unreadable


def test_fallback_never_signs() -> None:
    rotated = PickleSigner("new", ["old"])
    blob = rotated.dumps("v")
    _refused(PickleSigner("old"), blob)
    assert PickleSigner("new").loads(blob) == "v"


def test_log_names_the_refusal_without_data_or_secrets(caplog: pytest.LogCaptureFixture) -> None:
    s = PickleSigner(SECRET, [SECRET + "-old"])
    good = s.dumps({"card": SECRET_DATA})
    bad = [pickle.dumps(SECRET_DATA), good[:-1] + bytes([good[-1] ^ 1]),
           PickleSigner("other").dumps(SECRET_DATA)]
    with caplog.at_level(logging.DEBUG, logger="tablesessions"):
        for data in bad:
            _refused(s, data)
    security = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(security) == 3 and all(r.levelno == logging.WARNING for r in security)
    assert all("miss" in r.getMessage() for r in security)
    text = caplog.text
    for secret_bit in (SECRET_DATA, "card", SECRET, good[4:36].hex()):
        assert secret_bit not in text


def test_unverified_is_a_library_error() -> None:
    assert issubclass(Unverified, TableSessionsError)


def test_exported_members() -> None:
    from tablesessions import signed_pickle

    assert sorted(signed_pickle.__all__) == ["MAGIC", "PickleSigner", "Unverified"]


def test_bytes_like_accepted_other_types_refused() -> None:
    s = PickleSigner(SECRET)
    blob = s.dumps({"x": 1})
    assert s.loads(bytearray(blob)) == s.loads(memoryview(blob)) == {"x": 1}
    with pytest.raises(TypeError):
        s.loads(blob.decode("latin-1"))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", b""])
def test_empty_secret_or_fallback_refused(bad: str | bytes) -> None:
    with pytest.raises(ValueError):
        PickleSigner(bad)
    with pytest.raises(ValueError):
        PickleSigner(SECRET, [bad])


def test_non_string_secret_refused() -> None:
    with pytest.raises(TypeError):
        PickleSigner(12345)  # type: ignore[arg-type]

"""Write tokens: unique per write, without a syscall, and never shared by forked workers."""

from __future__ import annotations

import os
import random

import pytest

from tablesessions._record.rules import new_write_token


def test_tokens_are_64_bit_hex_and_do_not_repeat() -> None:
    tokens = {new_write_token() for _ in range(10_000)}
    assert len(tokens) == 10_000
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)


def test_seeding_the_global_random_does_not_make_tokens_predictable() -> None:
    random.seed(0)
    first = new_write_token()
    random.seed(0)
    assert new_write_token() != first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_the_parents_sequence() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, " ".join(new_write_token() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1000).decode().split()
    os.close(read)
    parent = [new_write_token() for _ in range(5)]
    assert len(child) == 5
    assert not set(child) & set(parent)

"""Run a core operation (a generator of effects) with a sync or async executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .effects import Effect, Op

T = TypeVar("T")


def drive(op: Op[T], execute: Callable[[Effect], Any]) -> T:
    """Feed each effect's result (or error) back into ``op`` until it returns."""
    try:
        effect = next(op)
        while True:
            try:
                result = execute(effect)
            except Exception as exc:
                effect = op.throw(exc)
            else:
                effect = op.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        op.close()


async def adrive(op: Op[T], execute: Callable[[Effect], Awaitable[Any]]) -> T:
    """The async twin of :func:`drive`."""
    try:
        effect = next(op)
        while True:
            try:
                result = await execute(effect)
            except Exception as exc:
                effect = op.throw(exc)
            else:
                effect = op.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        op.close()

"""The cookie-to-session rule of the Flask and Starlette integrations, and the
lazily loaded session mapping of Flask's.

``verify_cookie`` is shared. Starlette's ``request.session`` is a ``dict``
subclass of its own (``tablesessions.starlette.TableSession``): Starlette code
serialises it as JSON, which only a real dict allows. Flask's session is the
``MutableMapping`` below, loaded synchronously on first use.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from ..models import Session
from .cookies import CookieSigner

#: the sync or the async ``SessionStore``, whichever the framework drives
StoreT = TypeVar("StoreT")
LazyT = TypeVar("LazyT", bound="LazySession[Any]")


def verify_cookie(signer: CookieSigner, cookie: str | None) -> tuple[str | None, str | None, bool]:
    """The cookie-to-session rule of both integrations: (session id, the cookie
    when it verified, signed with the current secret?). A forged or garbage
    cookie gives (None, None, False): a fresh session, and a response that
    leaves the browser's cookie alone (as Flask's and Starlette's own do)."""
    verified = signer.verify(cookie) if cookie else None
    if verified is None:
        return None, None, False
    return verified[0], cookie, verified[1]


class LazySession(MutableMapping[str, Any], Generic[StoreT]):
    """A ``MutableMapping`` over a :class:`tablesessions.Session` loaded on demand."""

    def __init__(self, store: StoreT, session_id: str | None, cookie: str | None,
                 *, cookie_current: bool = False) -> None:
        self._store = store
        self._session_id = session_id
        #: the raw cookie value the request carried, when it verified (else None)
        self.cookie = cookie
        #: whether ``cookie`` is signed with the current secret (then the
        #: response need not sign it again to know it is still right)
        self.cookie_current = cookie_current
        self._session: Session | None = None

    @classmethod
    def from_cookie(cls: type[LazyT], store: Any, cookie: str | None,
                    signer: CookieSigner) -> LazyT:
        """The request's session for its raw cookie value. No I/O: a forged or
        garbage cookie is just a fresh session."""
        session_id, verified, current = verify_cookie(signer, cookie)
        return cls(store, session_id, verified, cookie_current=current)

    @property
    def loaded(self) -> bool:
        """Whether the session was loaded (or created) in this request."""
        return self._session is not None

    @property
    @abstractmethod
    def current(self) -> Session:
        """The underlying :class:`tablesessions.Session`."""

    # -- MutableMapping, delegated --------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.current[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.current[key] = value

    def __delitem__(self, key: str) -> None:
        del self.current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.current)

    def __len__(self) -> int:
        return len(self.current)

    def __repr__(self) -> str:
        return f"<TableSession loaded={self.loaded}>"

# SPDX-License-Identifier: Apache-2.0
"""The exceptions of session_vault. No message ever carries the token, a lease id, an auth key or
a session string: they name the session, the call and what the vault said."""

from __future__ import annotations

from typing import Any, Mapping, Optional


class SessionVaultError(Exception):
    """A call to the vault failed. ``status`` is the HTTP status (None when the vault could not be
    reached); ``problem`` is the vault's application/problem+json body, when there was one."""

    def __init__(self, message: str, status: Optional[int] = None,
                 problem: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem: Mapping[str, Any] = dict(problem or {})

    @property
    def problem_type(self) -> str:
        return str(self.problem.get("type") or "")


class LeaseHeld(SessionVaultError):
    """Another client holds the session's lease (HTTP 409 at acquisition)."""

    def __init__(self, message: str, holder: Optional[str], expires_at: Optional[str],
                 retry_after: Optional[float] = None, status: Optional[int] = 409,
                 problem: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, status, problem)
        self.holder = holder
        self.expires_at = expires_at
        self.retry_after = retry_after


class LeaseLost(SessionVaultError):
    """The engine no longer holds the session's lease (broken, expired, or taken over): it has
    stopped writing, and every storage call from now on raises this."""


class UnsupportedLibrary(SessionVaultError, RuntimeError):
    """The installed client library is not one this package knows how to serve."""

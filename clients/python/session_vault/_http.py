# SPDX-License-Identifier: Apache-2.0
"""The vault's HTTP API, as the storage engines use it (one synchronous httpx client; the engines
call it from a background thread or through ``asyncio.to_thread``)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote

import httpx

from .errors import LeaseHeld, LeaseLost, SessionVaultError

LEASE_HEADER = "Session-Vault-Lease"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII as UTF-8, not six-byte escapes; a lone surrogate becomes ``?``)."""
    return _ENCODER.encode(value).encode("utf-8", "replace")


def resolve_config(url: Optional[str], token: Optional[str]) -> Tuple[str, str]:
    """``url``/``token`` or SESSION_VAULT_ADDR / SESSION_VAULT_TOKEN (or SESSION_VAULT_TOKEN_FILE)."""
    url = url or os.environ.get("SESSION_VAULT_ADDR")
    if not url:
        raise SessionVaultError("no vault address: pass url= or set SESSION_VAULT_ADDR")
    if not url.startswith(("http://", "https://")):
        raise SessionVaultError("the vault address must start with http:// or https://")
    if token is None:
        token = os.environ.get("SESSION_VAULT_TOKEN")
    if not token:
        path = os.environ.get("SESSION_VAULT_TOKEN_FILE")
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except OSError as exc:
                raise SessionVaultError(f"cannot read SESSION_VAULT_TOKEN_FILE: {exc.strerror}") from None
    if not token:
        raise SessionVaultError("no vault token: pass token= or set SESSION_VAULT_TOKEN or SESSION_VAULT_TOKEN_FILE")
    return url.rstrip("/"), token


class VaultHTTP:
    """Thin wrapper over httpx: bearer auth, JSON, problem+json errors as typed exceptions."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 cacert: Optional[str] = None, timeout: float = 10.0) -> None:
        self.base_url, token = resolve_config(url, token)
        cacert = cacert or os.environ.get("SESSION_VAULT_CACERT")
        verify: Any = cacert if cacert else True
        if self.base_url.startswith("http://"):
            # Plain http has no TLS to verify (and no redirect is ever followed to an https one):
            # without this, httpx loads certifi's CA bundle here, 20-70 ms of every engine's open.
            verify = False
        # trust_env=False: no proxy or netrc from the environment is ever applied to the vault.
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, verify=verify, trust_env=False,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "session-vault-client"},
        )

    def __repr__(self) -> str:
        return f"<VaultHTTP {self.base_url}>"

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def session_path(name: str, tail: str = "") -> str:
        return "/v1/sessions/" + quote(name, safe="") + tail

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Optional[Mapping[str, Any]] = None, lease_id: Optional[str] = None,
                headers: Optional[Mapping[str, str]] = None) -> httpx.Response:
        hdrs: Dict[str, str] = dict(headers or {})
        if lease_id is not None:
            hdrs[LEASE_HEADER] = lease_id
        content = None
        if json_body is not None:
            content = json_body if isinstance(json_body, bytes) else encode_json(json_body)
            hdrs["Content-Type"] = "application/json"
        try:
            response = self._client.request(method, path, content=content, params=params, headers=hdrs)
        except httpx.HTTPError as exc:
            raise SessionVaultError(
                f"{method} {path}: cannot reach the vault at {self.base_url} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise self.error(method, path, response, fenced=lease_id is not None)
        return response

    @staticmethod
    def problem_of(response: httpx.Response) -> Dict[str, Any]:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}

    def error(self, method: str, path: str, response: httpx.Response, fenced: bool) -> SessionVaultError:
        problem = self.problem_of(response)
        status = response.status_code
        what = problem.get("detail") or problem.get("title") or response.reason_phrase or "error"
        message = f"{method} {path}: HTTP {status}: {what}"
        ptype = str(problem.get("type") or "")
        if status == 409 and (ptype.endswith("lease_lost") or fenced):
            return LeaseLost(message, status, problem)
        return SessionVaultError(message, status, problem)

    # -- the calls ------------------------------------------------------------------------------

    def acquire(self, name: str, holder: str, ttl: int, wait: int, export: str) -> Dict[str, Any]:
        path = self.session_path(name, "/lease")
        try:
            response = self._client.request(
                "POST", path, params={"export": export},
                content=json.dumps({"holder": holder, "ttl_seconds": ttl, "wait_seconds": wait}).encode(),
                headers={"Content-Type": "application/json"},
                timeout=max(10.0, wait + 10.0))
        except httpx.HTTPError as exc:
            raise SessionVaultError(
                f"POST {path}: cannot reach the vault at {self.base_url} ({type(exc).__name__})") from None
        if response.status_code == 409:
            problem = self.problem_of(response)
            holder_now = problem.get("holder")
            expires = problem.get("expires_at")
            retry = response.headers.get("Retry-After")
            try:
                retry_after: Optional[float] = float(retry) if retry is not None else None
            except ValueError:
                retry_after = None
            raise LeaseHeld(
                f"session {name!r} is leased by {holder_now!r} until {expires}"
                + (f" (retry after {retry}s)" if retry else ""),
                holder_now, expires, retry_after, 409, problem)
        if response.status_code >= 400:
            raise self.error("POST", path, response, fenced=False)
        body = response.json()
        if not isinstance(body, dict) or not body.get("lease_id") or not body.get("session_string"):
            raise SessionVaultError(f"POST {path}: the vault's answer lacks lease_id or session_string")
        return body

    def renew(self, name: str, lease_id: str) -> Dict[str, Any]:
        path = self.session_path(name, "/lease")
        body = self.request("PUT", path, lease_id=lease_id).json()
        return body if isinstance(body, dict) else {}

    def release(self, name: str, lease_id: str) -> None:
        self.request("DELETE", self.session_path(name, "/lease"), lease_id=lease_id)

    def export_string(self, name: str, fmt: str, lease_id: Optional[str] = None) -> str:
        response = self.request("GET", self.session_path(name, "/export"), params={"format": fmt},
                                lease_id=lease_id, headers={"Accept": "text/plain"})
        return response.text.strip()

    def metadata(self, name: str) -> Dict[str, Any]:
        body = self.request("GET", self.session_path(name)).json()
        return body if isinstance(body, dict) else {}

    def patch(self, name: str, fields: Mapping[str, Any], lease_id: Optional[str]) -> Dict[str, Any]:
        body = self.request("PATCH", self.session_path(name), json_body=dict(fields), lease_id=lease_id).json()
        return body if isinstance(body, dict) else {}

    def peers_page(self, name: str, after: Optional[int], limit: int) -> Tuple[List[Dict[str, Any]], Optional[int]]:
        params: Dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        body = self.request("GET", self.session_path(name, "/peers"), params=params).json()
        return list(body.get("items") or []), body.get("next_after")

    def put_peers(self, name: str, body: bytes, lease_id: Optional[str]) -> None:
        """``body``: ``{"peers": [...]}``, encoded (``encode_json``)."""
        self.request("PUT", self.session_path(name, "/peers"), json_body=body, lease_id=lease_id)

    def states(self, name: str) -> List[Dict[str, Any]]:
        body = self.request("GET", self.session_path(name, "/state")).json()
        return list(body.get("states") or [])

    def put_states(self, name: str, body: bytes, lease_id: Optional[str]) -> None:
        """``body``: ``{"states": [...]}``, encoded (``encode_json``)."""
        self.request("PUT", self.session_path(name, "/state"), json_body=body, lease_id=lease_id)

    def delete_state(self, name: str, state_id: int, lease_id: Optional[str]) -> None:
        self.request("DELETE", self.session_path(name, "/state"), params={"id": state_id}, lease_id=lease_id)

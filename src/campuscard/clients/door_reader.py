"""A door controller simulator: the reference for a device maker (docs/terminal-protocol.md,
"Door controllers"). It keeps its list, its anti-passback memory and its unsent events in a
state file, so it decides offline exactly as a real controller would, and syncs when the
server is back: poll the version, fetch a delta (or a snapshot), check the signature and the
content hash, upload events numbered by its own sequence until they are acknowledged."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from campuscard.access import rules
from campuscard.platform import signing

LIST_SIGNATURE_HEADER = "X-CC-List-Signature"
UPLOAD_BATCH = 200


class SyncFailed(Exception):
    """The list could not be fetched or did not check out; the old list stays in use."""


@dataclass
class DoorController:
    base_url: str
    sn: str
    key: bytes
    key_version: int = 1
    client: httpx.AsyncClient | None = None  # share one among many simulated controllers
    state_path: Path | None = None
    timeout: float = 10.0
    held: rules.ReaderList = field(default_factory=rules.ReaderList)
    passages: dict[str, rules.Passage] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 1

    # the wire -------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = signing.signed_headers(
            sn=self.sn,
            key=self.key,
            key_version=self.key_version,
            method=method,
            path=path,
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_hex(12),
        )
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self.client is not None:
            return await self.client.request(method, path, content=body, headers=headers)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout) as client:
            return await client.request(method, path, content=body, headers=headers)

    async def server_version(self) -> int:
        r = await self._send("GET", "/api/v1/terminal/access/version")
        if r.status_code != 200:
            raise SyncFailed(f"version: HTTP {r.status_code} {r.text[:200]}")
        return int(r.json()["version"])

    async def sync(self, *, snapshot: bool = False) -> str:
        """Fetch the list from the version held; returns the mode the server chose."""
        path = "/api/v1/terminal/access/list"
        if self.held.version and not snapshot:
            path += f"?base={self.held.version}&hash={self.held.content_hash}"
        r = await self._send("GET", path)
        if r.status_code != 200:
            raise SyncFailed(f"list: HTTP {r.status_code} {r.text[:200]}")
        expected = hmac.new(self.key, r.content, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, r.headers.get(LIST_SIGNATURE_HEADER, "")):
            raise SyncFailed("list: the signature does not match; list not applied")
        body = r.json()
        trial = rules.ReaderList(
            self.held.version,
            self.held.content_hash,
            dict(self.held.config),
            {k: set(v) for k, v in self.held.entries.items()},
        )
        trial.apply(body)
        if body["mode"] != "current" and trial.computed_hash() != body["content_hash"]:
            if body["mode"] == "delta" and not snapshot:
                return await self.sync(snapshot=True)  # our copy drifted: start again
            raise SyncFailed("list: content hash does not match; list not applied")
        self.held = trial
        self.save()
        return str(body["mode"])

    async def upload(self) -> int:
        """Send unsent events until the server has acknowledged them all; returns how many
        it stored as new (a resent batch is acknowledged without being stored twice)."""
        stored = 0
        while self.pending:
            batch = self.pending[:UPLOAD_BATCH]
            r = await self._send("POST", "/api/v1/terminal/access/events", {"events": batch})
            if r.status_code != 200:
                raise SyncFailed(f"events: HTTP {r.status_code} {r.text[:200]}")
            stored += int(r.json()["stored"])
            self.pending = self.pending[len(batch) :]
            self.save()
        return stored

    async def tick(self) -> str | None:
        """One online round: upload, and fetch the list when the server has a new version."""
        await self.upload()
        if await self.server_version() != self.held.version or not self.held.config:
            return await self.sync()
        return None

    # the door -------------------------------------------------------------------------------

    def present(
        self, card_number: str, direction: str = "in", at: datetime | None = None
    ) -> rules.Decision:
        """A card at the entry (in) or exit (out) reader: decided from the list alone."""
        now = at or datetime.now(UTC)
        if not self.held.config:
            decision = rules.Decision(False, "not_on_list")
        else:
            decision = rules.decide(self.held, card_number, direction, now, self.passages)
        event: dict[str, Any] = {
            "kind": "granted" if decision.granted else "denied",
            "direction": direction,
            "card_number": card_number,
        }
        if not decision.granted:
            event["reason"] = decision.reason
        if decision.flag:
            event["flag"] = decision.flag
        self._record(event, now)
        return decision

    def alarm(self, kind: str, at: datetime | None = None) -> None:
        """The door was forced open, or held open too long."""
        self._record({"kind": kind}, at or datetime.now(UTC))

    def _record(self, event: dict[str, Any], at: datetime) -> None:
        event |= {"seq": self.next_seq, "at": at.isoformat(), "list_version": self.held.version}
        self.next_seq += 1
        self.pending.append(event)
        self.save()

    # the state file -------------------------------------------------------------------------

    def save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "version": self.held.version,
            "content_hash": self.held.content_hash,
            "config": self.held.config,
            "entries": {k: sorted(v) for k, v in self.held.entries.items()},
            "passages": {k: [p.direction, p.at] for k, p in self.passages.items()},
            "pending": self.pending,
            "next_seq": self.next_seq,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.state_path)

    def load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self.held = rules.ReaderList(
            int(state["version"]),
            str(state["content_hash"]),
            dict(state["config"]),
            {k: {tuple(e) for e in v} for k, v in state["entries"].items()},
        )
        self.passages = {k: rules.Passage(d, float(a)) for k, (d, a) in state["passages"].items()}
        self.pending = list(state["pending"])
        self.next_seq = int(state["next_seq"])

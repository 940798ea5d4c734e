"""The student-record uploader (seed 004 step 1, client side): frame the file with its SHA-256,
send it, compare the server's canonical echo with what was sent, and try again — up to three
attempts in all — when the upload was damaged or the echo differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from campuscard.issuing import import_rules as rules

MAX_ATTEMPTS = 3
RETRYABLE = {"DIGEST_MISMATCH", "FRAME_INVALID"}


@dataclass
class UploadOutcome:
    ok: bool
    attempts: int
    message: str
    result: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # bad rows, when refused
    history: list[str] = field(default_factory=list)  # what happened on each attempt


async def upload_students(
    client: httpx.AsyncClient,
    *,
    school: str,
    content: bytes,
    filename: str,
    headers: dict[str, str] | None = None,
    attempts: int = MAX_ATTEMPTS,
) -> UploadOutcome:
    """Upload ``content`` (xlsx or CSV) to ``school``; ``client`` carries base URL and auth."""
    sent, local_errors = rules.parse_rows(content)  # raises for a file that is not a table
    if local_errors:
        # the server would refuse these rows too; say so without sending
        return UploadOutcome(
            ok=False,
            attempts=0,
            message=f"{len(local_errors)} problem(s) in the file; nothing was sent",
            errors=[e.as_dict() for e in local_errors],
        )
    frame = rules.build_frame(content)
    request_headers = {
        "Content-Type": "application/x-campuscard-import",
        "X-Filename": quote(filename),
        **(headers or {}),
    }
    outcome = UploadOutcome(ok=False, attempts=0, message="")
    for attempt in range(1, attempts + 1):
        outcome.attempts = attempt
        try:
            response = await client.post(
                f"/api/v1/admin/schools/{school}/student-imports",
                content=frame,
                headers=request_headers,
            )
        except httpx.HTTPError as err:
            outcome.history.append(f"attempt {attempt}: network error {err!r}")
            continue
        body = _json(response)
        if response.status_code != 200:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            code = error.get("code", str(response.status_code))
            outcome.history.append(f"attempt {attempt}: refused {code}: {error.get('message')}")
            if code in RETRYABLE or response.status_code >= 500:
                continue
            outcome.message = str(error.get("message") or f"refused ({response.status_code})")
            outcome.errors = list(error.get("details", {}).get("errors", []))
            return outcome
        if (
            body.get("sha256") != rules.sha256_hex(content)
            or not isinstance(body.get("canonical"), list)
            or not rules.echo_matches(sent, body["canonical"])
            or rules.sha256_hex(rules.canonical_text(body["canonical"]).encode())
            != body.get("canonical_sha256")
        ):
            outcome.history.append(f"attempt {attempt}: the echo does not match the file")
            continue
        outcome.ok = True
        outcome.result = body
        outcome.history.append(f"attempt {attempt}: stored as version {body['version']}")
        outcome.message = (
            f"上传成功 upload succeeded: version {body['version']}, {body['rows']} rows "
            f"({body['added']} added, {body['updated']} updated, {body['unchanged']} unchanged)"
        )
        return outcome
    outcome.message = f"上传失败 upload failed after {outcome.attempts} attempts"
    return outcome


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}

"""Student-record imports: the framed upload, the list of stored versions, a version's bytes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from campuscard.api.deps import CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.limits import accepts_upload, read_framed_upload
from campuscard.issuing import imports
from campuscard.issuing.import_rules import MAX_FILE_BYTES

router = APIRouter(prefix="/api/v1/admin/schools/{school}/student-imports", tags=["enrollment"])


@router.post("")
@accepts_upload(MAX_FILE_BYTES)
async def import_students(
    school: str, request: Request, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    """Body: the frame ``CCIMPORT/1 START <length>\\n<file>\\nCCIMPORT/1 END <sha256>\\n``
    (see clients/import_uploader.py); header ``X-Filename`` (URL-encoded)."""
    school_id = await school_id_for(pool, actor, school)
    frame = await read_framed_upload(request, MAX_FILE_BYTES)
    async with pool.acquire() as conn:
        result = await imports.do_import_students(
            conn,
            actor,
            school_id,
            frame=frame,
            filename=unquote(request.headers.get("x-filename", "")),
        )
    return result.as_dict()


@router.get("")
async def list_imports(school: str, pool: Pool, actor: CurrentActor) -> list[dict[str, Any]]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await imports.list_imports(conn, actor, school_id)


@router.get("/{version}/file")
async def import_file(school: str, version: int, pool: Pool, actor: CurrentActor) -> Response:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        filename, content = await imports.import_file_content(conn, actor, school_id, version)
    kind = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if content.startswith(b"PK")
        else "text/csv; charset=utf-8"
    )
    return Response(
        content,
        media_type=kind,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )

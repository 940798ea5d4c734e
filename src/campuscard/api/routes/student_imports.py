"""Student-record imports: the framed upload, the list of stored versions, a version's bytes."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from campuscard.api.deps import CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.limits import accepts_upload, read_framed_upload
from campuscard.issuing import imports
from campuscard.issuing.import_rules import MAX_FILE_BYTES

router = APIRouter(prefix="/api/v1/admin/schools/{school}/student-imports", tags=["enrollment"])


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class NoteOut(BaseModel):
    code: str = Field(description="what the reader did (pages translate import.note.<code>)")
    message: str = Field(description="the same in English")
    rows: list[int] = Field(description="the sheet rows it touched (header = 1)")
    value: str | None = Field(default=None, description="the encoding or sheet, where it names one")


class ImportOut(BaseModel):
    import_id: int
    version: int = Field(description="the school's import version this file became")
    sha256: str = Field(description="of the file as uploaded")
    rows: int
    added: int
    updated: int
    unchanged: int
    canonical: list[str] = Field(description="the rows as read, one canonical line each")
    canonical_sha256: str
    replayed: bool = Field(description="the same file again: nothing changed")
    notes: list[NoteOut] = Field(description="what was done to read the file as meant")


class ImportFileOut(BaseModel):
    id: int
    version: int
    filename: str
    sha256: str
    size_bytes: int
    row_count: int
    added: int
    updated: int
    unchanged: int
    canonical_sha256: str
    imported_by: str | None = Field(description="the username of who imported it")
    created_at: dt.datetime


@router.post("", response_model_exclude_unset=True)
@accepts_upload(MAX_FILE_BYTES)
async def import_students(
    school: str, request: Request, pool: Pool, actor: CurrentActor
) -> ImportOut:
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
    return ImportOut.model_validate(result.as_dict())


@router.get("")
async def list_imports(school: str, pool: Pool, actor: CurrentActor) -> list[ImportFileOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await imports.list_imports(conn, actor, school_id)
    return [ImportFileOut.model_validate(r) for r in rows]


@router.get(
    "/{version}/file",
    response_class=Response,
    responses={
        200: {
            "description": "the stored file, byte for byte: a workbook or CSV",
            "content": {
                XLSX: {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_file(school: str, version: int, pool: Pool, actor: CurrentActor) -> Response:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        filename, content = await imports.import_file_content(conn, actor, school_id, version)
    kind = XLSX if content.startswith(b"PK") else "text/csv; charset=utf-8"
    return Response(
        content,
        media_type=kind,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )

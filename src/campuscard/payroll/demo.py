"""The demo campus's payroll: last month's salaries for two staff members, uploaded by
'settlement' as a payroll sheet and approved by 'settlement2' through the same use cases as the
console, so both are paid to the campus card. 李老师 (T0002, sign-in T0002) finds the salary in
their history and notices; the finance console's 工资管理 shows the batch and its report."""

from __future__ import annotations

from datetime import timedelta

from campuscard.db.tx import Tx
from campuscard.issuing.import_rules import build_frame
from campuscard.ledger import postings
from campuscard.payroll import batches
from campuscard.platform import auth, four_eyes

STAFF_NUMBER = "T0002"
STAFF = (("T0002", "李老师", "13700000002"), ("T0003", "张老师", "13700000003"))
SHEET = (
    "工号,姓名,实发金额,发放方式,备注\n"
    "T0002,李老师,6800.00,校园卡,基本工资+绩效\n"
    "T0003,张老师,7200.50,校园卡,\n"
    "合计,,14000.50,,\n"
)


async def ensure_demo_payroll(tx: Tx, school_id: int, password: str) -> None:
    """Once per school."""
    if await tx.fetchval(
        "SELECT 1 FROM persons WHERE school_id = $1 AND number = $2", school_id, STAFF_NUMBER
    ):
        return
    for number, name, phone in STAFF:
        person = await tx.fetchval(
            """INSERT INTO persons(school_id, kind, number, name, phone, account_status)
               VALUES ($1, 'staff', $2, $3, $4, 'active') RETURNING id""",
            school_id,
            number,
            name,
            phone,
        )
        await postings.open_purses(tx, school_id, person)
        if number == STAFF_NUMBER:
            await auth.create_user(
                tx,
                username=number,
                password=password,
                school_id=school_id,
                roles=[("cardholder", school_id, None)],
                display_name=name,
                person_id=person,
            )
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    period = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    actors = []
    for username in ("settlement", "settlement2"):
        uid = await tx.fetchval(
            "SELECT id FROM users WHERE school_id = $1 AND username = $2", school_id, username
        )
        actors.append(await auth.load_actor(tx, uid))
    uploader, approver = actors
    upload = await batches.do_upload_sheet.in_tx(
        tx,
        uploader,
        school_id,
        period=period,
        frame=build_frame(SHEET.encode()),
        filename=f"{period}工资.csv",
    )
    await four_eyes.do_decide.in_tx(tx, approver, school_id, upload.approval_id, approve=True)

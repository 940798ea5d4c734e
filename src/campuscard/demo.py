"""The demo campus (``campuscard demo``): created once, found again on every later run."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from campuscard import demo_history
from campuscard.access import demo as access_demo
from campuscard.attendance import demo as attendance_demo
from campuscard.bills import demo as bills_demo
from campuscard.credit import demo as credit_demo
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import adjustments, postings
from campuscard.ledger.money import Money
from campuscard.metering import demo as metering_demo
from campuscard.monitoring import demo as monitoring_demo
from campuscard.offline import demo as offline_demo
from campuscard.orders import demo as orders_demo
from campuscard.payroll import demo as payroll_demo
from campuscard.people import directory
from campuscard.platform import auth

SCHOOL_CODE = "DEMO"
ADMIN_USER = "admin"
DEMO_PASSWORD = "campuscard-demo"  # noqa: S105 - demo campus only, printed on the console
STUDENT_PASSWORD = "student-demo"  # noqa: S105 - demo campus only
STUDENTS = 200

PROVINCES = [
    ("11", "北京市", "Beijing"),
    ("31", "上海市", "Shanghai"),
    ("32", "江苏省", "Jiangsu"),
    ("33", "浙江省", "Zhejiang"),
    ("44", "广东省", "Guangdong"),
    ("51", "四川省", "Sichuan"),
]
CLASSES = [
    ("计算机2601班", "2026"),
    ("计算机2602班", "2026"),
    ("数学2601班", "2026"),
    ("物理2501班", "2025"),
    ("化学2501班", "2025"),
    ("外语2401班", "2024"),
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "平",
    "刚",
    "桂英",
    "子涵",
    "欣怡",
    "浩然",
    "梓轩",
    "雨桐",
]
# (name, English name, channel, commission basis points, outlets)
MERCHANTS = [
    ("第一食堂", "Canteen 1", "canteen", 0, [("1号窗口", "Window 1"), ("2号窗口", "Window 2")]),
    ("校园超市", "Campus Supermarket", "supermarket", 60, [("收银台", "Checkout")]),
    ("学费办公室", "Tuition Office", "tuition", 0, [("柜台", "Counter")]),
]
STAFF = [
    ("school-admin", "school_admin", "school admin 学校管理员"),
    ("card-center", "card_center", "card center 卡务中心"),
    ("settlement", "settlement", "settlement 结算中心"),
    ("settlement2", "settlement", "settlement checker 结算复核"),
    ("teacher", "teacher", "teacher 班主任"),
]


@dataclass
class DemoCampus:
    school_id: int
    created: bool
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (who, school, user)
    terminals: list[str] = field(default_factory=list)
    terminal_keys: list[tuple[str, int]] = field(default_factory=list)  # (SN, key version)
    history: demo_history.History | None = None  # what the past month booked, when created
    watched: monitoring_demo.Watched | None = None  # what monitoring found in it


async def _pending_adjustment(tx: Tx, school_id: int) -> None:
    """One correction waiting for a second person, so the approvals page shows the four-eyes
    step: a canteen payment lost in a power cut, found on the till's paper roll."""
    proposer = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement'", school_id
    )
    person = await tx.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2",
        school_id,
        student_number(2),
    )
    merchant_account = await tx.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND kind = 'merchant' ORDER BY id LIMIT 1",
        school_id,
    )
    purse = (await postings.open_purses(tx, school_id, person))["cash"]
    memo = "午餐 12.50 断电未上传，按小票补扣 / lunch lost in a power cut, booked from the receipt"
    await adjustments.propose_adjustment(
        tx,
        actor=await auth.load_actor(tx, proposer),
        school_id=school_id,
        client_id="demo-adjustment-1",
        from_account=purse,
        to_account=merchant_account,
        amount=Money(1250),
        memo=memo,
        payload={
            "from_account": purse,
            "to_account": merchant_account,
            "amount": 1250,
            "memo": memo,
        },
    )


def student_number(i: int) -> str:
    return f"2026{i:06d}"


async def load_demo(
    conn: Conn, *, history_days: int = 0, master_key: str | None = None
) -> DemoCampus:
    """Create the demo campus once (later calls find it). ``history_days``: how many finished
    days of campus life to book before today when it is created (``campuscard demo``: 30).
    ``master_key``: the server's, so the offline till's uploaded records carry the till's real
    signatures (without it the demo has no offline till)."""
    async with transaction(conn) as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(4242)")
        school_id = await tx.fetchval("SELECT id FROM schools WHERE code = $1", SCHOOL_CODE)
        created = school_id is None
        history = None
        month: monitoring_demo.Month | None = None
        watched: monitoring_demo.Watched | None = None
        if created:
            school_id = await _create(tx, history_days)
            classes = [
                r["id"]
                for r in await tx.fetch(
                    "SELECT id FROM classes WHERE school_id = $1 ORDER BY id", school_id
                )
            ]
            await monitoring_demo.switch_on(tx, school_id, DEMO_PASSWORD, classes)
            if history_days:
                month = monitoring_demo.Month(
                    tx, school_id, demo_history.ACTIVE_STUDENTS, history_days
                )
                await month.start()
                history = await demo_history.book_history(
                    tx, school_id, days=history_days, each_day=month.day
                )
        await _payout_accounts(tx, school_id)
        await _ensure_issuing(tx, school_id)
        await metering_demo.ensure_demo_devices(tx, school_id)
        if master_key is not None:
            await offline_demo.ensure_demo_offline_till(tx, school_id, master_key)
        await bills_demo.ensure_demo_bills(
            tx, school_id, [student_number(i) for i in range(1, bills_demo.BILLED + 1)]
        )
        await access_demo.ensure_demo_access(
            tx, school_id, [student_number(i) for i in range(1, access_demo.RESIDENTS + 1)]
        )
        await orders_demo.ensure_demo_orders(
            tx, school_id, [student_number(i) for i in range(1, 20)], DEMO_PASSWORD
        )
        await credit_demo.ensure_demo_credit(tx, school_id, DEMO_PASSWORD)
        await payroll_demo.ensure_demo_payroll(tx, school_id, DEMO_PASSWORD)
        await attendance_demo.ensure_demo_attendance(tx, school_id)
        if created:
            await _pending_adjustment(tx, school_id)
        if month is not None:  # after the bills' arrears pass told monitoring
            settlement_user = await tx.fetchval(
                "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement'", school_id
            )
            watched = await month.finish(await auth.load_actor(tx, settlement_user))
    campus = DemoCampus(school_id=school_id, created=created, history=history, watched=watched)
    campus.logins = (
        [("platform admin", "", ADMIN_USER)]
        + [(label, SCHOOL_CODE, username) for username, _, label in STAFF]
        + [
            ("merchant 食堂", SCHOOL_CODE, "canteen1"),
            ("online store 网店", SCHOOL_CODE, orders_demo.SHOP_USER),
            ("staff with credit 教职工（信用额度）", SCHOOL_CODE, credit_demo.STAFF_NUMBER),
            ("staff paid by payroll 教职工（工资）", SCHOOL_CODE, payroll_demo.STAFF_NUMBER),
            ("parent 家长", SCHOOL_CODE, "parent1"),
            ("counsellor 辅导员", SCHOOL_CODE, monitoring_demo.COUNSELLOR),
            ("student 学生", SCHOOL_CODE, student_number(1)),
            ("parent of a new student 新生家长", SCHOOL_CODE, NEW_STUDENT_PARENT_PHONE),
        ]
    )
    rows = await conn.fetch(
        "SELECT sn, key_version FROM terminals WHERE school_id = $1 ORDER BY id", school_id
    )
    campus.terminals = [r["sn"] for r in rows]
    campus.terminal_keys = [(r["sn"], r["key_version"]) for r in rows]
    return campus


async def _create(conn: Tx, history_days: int) -> int:
    await conn.executemany(
        "INSERT INTO provinces(code, name, name_en) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        PROVINCES,
    )
    school_id: int = await conn.fetchval(
        """INSERT INTO schools(province_id, code, name, name_en)
           SELECT id, $1, '示范大学', 'Demo University' FROM provinces WHERE code = '32'
           RETURNING id""",
        SCHOOL_CODE,
    )
    await directory.open_school_accounts(conn, school_id)
    class_ids = [
        await conn.fetchval(
            "INSERT INTO classes(school_id, name, grade) VALUES ($1, $2, $3) RETURNING id",
            school_id,
            name,
            grade,
        )
        for name, grade in CLASSES
    ]
    if not await conn.fetchval(
        "SELECT 1 FROM users WHERE school_id IS NULL AND username = $1", ADMIN_USER
    ):
        await auth.create_user(
            conn,
            username=ADMIN_USER,
            password=DEMO_PASSWORD,
            school_id=None,
            roles=[("platform_admin", None, None)],
            display_name="平台管理员",
        )
    for username, role, label in STAFF:
        await auth.create_user(
            conn,
            username=username,
            password=DEMO_PASSWORD,
            school_id=school_id,
            roles=[(role, school_id, None)],
            display_name=label.split(" ", 2)[-1],
        )

    opening = await postings.system_account(conn, school_id, "opening_balances")
    if history_days:  # the balances were there before the history starts
        today = await conn.fetchval("SELECT cc_business_date($1, now())", school_id)
        zone = ZoneInfo(
            await conn.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id)
        )
        await demo_history.set_clock(conn, demo_history.opening_instant(today, zone, history_days))
    # one hash for every demo student
    student_hash = await auth.make_password_hash(STUDENT_PASSWORD)
    for i in range(1, STUDENTS + 1):
        name = student_name(i)
        person_id = await conn.fetchval(
            """INSERT INTO persons(school_id, kind, number, name, class_id, phone, account_status)
               VALUES ($1, 'student', $2, $3, $4, $5, 'active') RETURNING id""",
            school_id,
            student_number(i),
            name,
            class_ids[i % len(class_ids)],
            f"138{i:08d}",
        )
        await conn.execute(
            "INSERT INTO guardians(school_id, person_id, name, phone) VALUES ($1, $2, $3, $4)",
            school_id,
            person_id,
            name[0] + "家长",
            f"139{i:08d}",
        )
        await conn.execute(
            """INSERT INTO users(school_id, username, display_name, password_hash, person_id)
               VALUES ($1, $2, $3, $4, $5)""",
            school_id,
            student_number(i),
            name,
            student_hash,
            person_id,
        )
        await conn.execute(
            """INSERT INTO user_roles(user_id, role, school_id)
               SELECT id, 'cardholder', $1 FROM users WHERE person_id = $2""",
            school_id,
            person_id,
        )
        purses = await postings.open_purses(conn, school_id, person_id)
        cash = 10000 + (i * 1337) % 40000  # 100.00 to 499.99 yuan
        subsidy = 5000 if i % 5 == 0 else 0
        legs = [postings.Leg(opening, -(cash + subsidy)), postings.Leg(purses["cash"], cash)]
        if subsidy:
            legs.append(postings.Leg(purses["subsidy"], subsidy))
        await postings.post(
            conn,
            school_id=school_id,
            kind="opening_balance",
            legs=legs,
            ref=f"demo:{student_number(i)}",
            memo="demo opening balance",
        )
        await conn.execute(
            """INSERT INTO cards(school_id, person_id, number, uid, kind, state, deposit,
                                 expires_on)
               VALUES ($1, $2, $3, $4, 'student', 'active', 0, current_date + 1460)""",
            school_id,
            person_id,
            f"8800{i:08d}",
            f"{0x04A10000 + i:08X}",
        )

    await demo_history.set_clock(conn, None)
    seq = 0
    for name, name_en, channel, commission, outlets in MERCHANTS:
        merchant_id = await conn.fetchval(
            """INSERT INTO merchants(school_id, name, name_en, channel, status, commission_bp,
                                     approved_at)
               VALUES ($1, $2, $3, $4, 'approved', $5, now()) RETURNING id""",
            school_id,
            name,
            name_en,
            channel,
            commission,
        )
        for outlet, outlet_en in outlets:
            seq += 1
            outlet_id = await conn.fetchval(
                "INSERT INTO outlets(school_id, merchant_id, name, name_en) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                school_id,
                merchant_id,
                outlet,
                outlet_en,
            )
            await conn.execute(
                """INSERT INTO terminals(school_id, sn, kind, merchant_id, outlet_id, location)
                   VALUES ($1, $2, 'pos', $3, $4, $5)""",
                school_id,
                f"POS-DEMO-{seq:03d}",
                merchant_id,
                outlet_id,
                f"{name} {outlet}",
            )
        if channel == "canteen":
            await auth.create_user(
                conn,
                username="canteen1",
                password=DEMO_PASSWORD,
                school_id=school_id,
                roles=[("merchant_manager", school_id, merchant_id)],
                display_name=name_en,
            )
    await conn.execute(
        """INSERT INTO terminals(school_id, sn, kind, location)
           VALUES ($1, 'KIOSK-DEMO-001', 'kiosk', '图书馆一楼 Library ground floor')""",
        school_id,
    )
    # a parent with two children at the school, for the parent's phone pages
    parent = await auth.create_user(
        conn,
        username="parent1",
        password=DEMO_PASSWORD,
        school_id=school_id,
        roles=[("guardian", school_id, None)],
        display_name="家长 parent",
        phone="13900000001",
    )
    await conn.execute(
        """INSERT INTO guardian_links(user_id, person_id, school_id)
           SELECT $1, id, $2 FROM persons WHERE school_id = $2 AND number = ANY($3::text[])""",
        parent,
        school_id,
        [student_number(1), student_number(2)],
    )
    await _money_demo(conn, school_id, class_ids[0])
    return school_id


def student_name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)]


async def _money_demo(conn: Conn, school_id: int, class_id: int) -> None:
    """A subsidy batch made by 'settlement' for one class, waiting for 'settlement2' to
    approve it (second person), expiring in 30 days."""
    maker = await conn.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement'", school_id
    )
    people = await conn.fetch(
        "SELECT id FROM persons WHERE school_id = $1 AND class_id = $2 ORDER BY id",
        school_id,
        class_id,
    )
    batch = await conn.fetchval(
        """INSERT INTO subsidy_batches(school_id, name, source, rule, expires_on, total, lines,
                                       created_by)
           VALUES ($1, '十二月伙食补助', 'rule', $2, cc_business_date($1) + 30, $3, $4, $5)
           RETURNING id""",
        school_id,
        {"class_ids": [class_id], "amount": "20.00"},
        2000 * len(people),
        len(people),
        maker,
    )
    await conn.executemany(
        "INSERT INTO subsidy_lines(school_id, batch_id, person_id, amount) "
        "VALUES ($1, $2, $3, 2000)",
        [(school_id, batch, r["id"]) for r in people],
    )


async def _payout_accounts(conn: Conn, school_id: int) -> None:
    """Every demo merchant gets a (fictitious) bank account, so closing a day writes a payout
    file line for it (settlement center → 结算中心 in the console)."""
    await conn.execute(
        """INSERT INTO merchant_payout_accounts(merchant_id, school_id, bank_code, account_no,
                                                account_name)
           SELECT id, school_id, 'ICBC', '62220202' || lpad(id::text, 8, '0'), name
             FROM merchants WHERE school_id = $1
           ON CONFLICT (school_id, merchant_id) DO NOTHING""",
        school_id,
    )


NEW_STUDENT_CLASS = "新生2609班"
NEW_STUDENT_PARENT_PHONE = "13700000001"
NEW_STUDENTS = 12
CARD_FEE = "20.00"


def new_student_number(i: int) -> str:
    return f"2026900{i:03d}"


async def _ensure_issuing(tx: Tx, school_id: int) -> None:
    """Self-service issuing (issue 7): new students without cards imported by the teacher
    through the import service, and a parent whose phone the school has on record, so the
    parent can apply, get a pickup code and collect the card at KIOSK-DEMO-001."""
    if await tx.fetchval("SELECT 1 FROM student_import_files WHERE school_id = $1", school_id):
        return
    from campuscard.issuing import imports
    from campuscard.issuing.import_rules import HEADERS_ZH, build_frame

    # the card fee (工本费) a parent pays online when applying; waived for students in hardship
    await tx.execute(
        """UPDATE schools SET settings = jsonb_set(coalesce(settings, '{}'), '{issuing}',
                  coalesce(settings -> 'issuing', '{}') || $2::jsonb)
            WHERE id = $1""",
        school_id,
        {"card_fee": CARD_FEE, "fee_waived_categories": ["hardship"]},
    )

    school = await tx.fetchrow(
        """SELECT s.name, p.name AS province FROM schools s
             JOIN provinces p ON p.id = s.province_id WHERE s.id = $1""",
        school_id,
    )
    assert school is not None
    lines = [",".join(HEADERS_ZH)] + [
        f"{i},{school['province']},{school['name']},"
        f"{SURNAMES[(i * 3) % len(SURNAMES)]}{GIVEN[(i * 5) % len(GIVEN)]},"
        f"{NEW_STUDENT_CLASS},{new_student_number(i)},"
        for i in range(1, NEW_STUDENTS + 1)
    ]
    teacher_id = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'teacher'", school_id
    )
    teacher = await auth.load_actor(tx, teacher_id)
    await imports.do_import_students.in_tx(
        tx,
        teacher,
        school_id,
        frame=build_frame("\n".join(lines).encode()),
        filename="新生名单.csv",
    )
    person_id = await tx.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2",
        school_id,
        new_student_number(1),
    )
    await tx.execute(
        "INSERT INTO guardians(school_id, person_id, name, phone) VALUES ($1, $2, '新生家长', $3)",
        school_id,
        person_id,
        NEW_STUDENT_PARENT_PHONE,
    )
    if not await tx.fetchval(
        "SELECT 1 FROM users WHERE school_id = $1 AND username = $2",
        school_id,
        NEW_STUDENT_PARENT_PHONE,
    ):
        await auth.create_user(
            tx,
            username=NEW_STUDENT_PARENT_PHONE,
            password=DEMO_PASSWORD,
            school_id=school_id,
            roles=[("guardian", school_id, None)],
            display_name="新生家长",
            phone=NEW_STUDENT_PARENT_PHONE,
        )

"""A synthetic campus: a term of card data for N students with known truth injected, run
through the real monitoring rules and the hardship presets, scored by precision and recall.

    python -m bench.synthetic [--students 400] [--seed 7]

Injected truth: large payments (a phone bought after a top-up), spending in the small hours,
sprees of small payments within minutes, a card used at the far campus minutes after a canteen
meal, days without a canteen meal while the card is used at shops, balances left to run low,
overdue bills, offline overdrafts; hardship profiles (many cheap canteen meals) and dieting
students (as many cheap meals, with a declared diet). The alert rules are the functions the
worker runs (``monitoring.events.payment_findings``, ``rules.low_balance``,
``daily.no_meal_findings``, ``rules.arrears``, ``rules.offline_overdraft``); the presets are
``monitoring.hardship_rules.preset``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from campuscard.monitoring import daily, events, hardship_rules, rules
from campuscard.monitoring.rules import DEFAULTS, Spend

TERM_START = date(2026, 3, 2)
TERM_DAYS = 112
CANTEENS = [((0, 0), "一食堂"), ((300, 200), "二食堂")]
SHOP = ((600, 100), "超市")
FAR = ((3200, 0), "东校区超市")


@dataclass
class Student:
    id: int
    profile: str  # normal, hardship, dieting, off_campus
    balance: int = 30000
    lets_run_low: bool = False
    payments: list[Spend] = field(default_factory=list)
    tags: dict[int, tuple[str, int]] = field(default_factory=dict)  # payment id -> (rule, episode)
    low_episodes: list[tuple[datetime, datetime]] = field(default_factory=list)
    money_in: list[tuple[datetime, int]] = field(default_factory=list)  # (when, posting id)
    topups: dict[int, int] = field(default_factory=dict)  # posting id -> amount


class Campus:
    arrears_truth = 0
    overdraft_truth = 0

    def __init__(self, n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = 1
        self.next_money = 1
        self.episodes: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self.skips: dict[int, list[tuple[date, date, int]]] = defaultdict(list)
        profiles = ["hardship"] * (n // 20) + ["dieting"] * (n // 40) + ["off_campus"] * (n // 40)
        profiles += ["normal"] * (n - len(profiles))
        self.rng.shuffle(profiles)
        self.students = [Student(i + 1, p) for i, p in enumerate(profiles)]
        for s in self.students:
            s.lets_run_low = s.profile == "normal" and self.rng.random() < 0.08

    def _pay(
        self,
        s: Student,
        at: datetime,
        amount: int,
        channel: str,
        where: tuple[tuple[int, int], str],
    ) -> Spend | None:
        if amount > s.balance:
            self._topup(s, at - timedelta(minutes=1), amount + 20000)
        p = Spend(self.next_id, at, amount, channel, where[0], where[1])
        self.next_id += 1
        s.balance -= amount
        s.payments.append(p)
        if s.balance < 6000 and not s.lets_run_low:  # an automatic top-up keeps it above
            self._topup(s, at + timedelta(seconds=30), 20000)
        return p

    def _topup(self, s: Student, at: datetime, amount: int) -> None:
        s.balance += amount
        s.money_in.append((at, self.next_money))
        s.topups[self.next_money] = amount
        self.next_money += 1

    def _episode(self, rule: str, s: Student, payments: list[Spend | None]) -> None:
        n = len(self.episodes[rule])
        self.episodes[rule].add((s.id, n))
        for p in payments:
            if p is not None:
                s.tags[p.id] = (rule, n)

    def _day(self, s: Student, day: date, skip: bool) -> None:
        rng = self.rng
        base = datetime(day.year, day.month, day.day)
        cheap = s.profile in ("hardship", "dieting")
        if s.profile == "off_campus":
            meals = [(0.15, 12, 0, 1000, 1800)]
        elif cheap:
            meals = [(0.75, 7, 30, 150, 250), (0.85, 11, 40, 300, 450), (0.75, 17, 40, 300, 450)]
        else:
            meals = [(0.6, 7, 20, 300, 800), (0.95, 11, 30, 800, 1800), (0.85, 17, 30, 800, 1600)]
        if not skip:
            for p, hh, mm, lo, hi in meals:
                if rng.random() < p:
                    at = base + timedelta(hours=hh, minutes=mm + rng.randint(0, 60))
                    self._pay(s, at, rng.randint(lo, hi), "canteen", rng.choice(CANTEENS))
        shop_p = 0.9 if skip else 0.3
        for _ in range(2 if skip else 1):
            if rng.random() < shop_p:
                at = base + timedelta(hours=rng.randint(10, 20), minutes=rng.randint(0, 59))
                self._pay(s, at, rng.randint(300, 4000), "supermarket", SHOP)
        if s.balance < 6000 and not (s.lets_run_low and rng.random() < 0.85):
            self._topup(s, base + timedelta(hours=21), 20000)

    def generate(self) -> None:
        rng = self.rng
        for s in self.students:
            skip_start = -1
            if s.profile == "normal" and rng.random() < 0.1:
                skip_start = rng.randint(20, TERM_DAYS - 10)
                first = TERM_START + timedelta(days=skip_start)
                self.skips[s.id].append((first, first + timedelta(days=5), 0))
                self.episodes["no_meal"].add((s.id, skip_start))
            specials = self._specials(s)
            for d in range(TERM_DAYS):
                day = TERM_START + timedelta(days=d)
                self._day(s, day, skip_start <= d < skip_start + 6)
                for kind in specials.get(d, []):
                    self._special(s, day, kind)
            s.payments.sort(key=lambda p: p.local)

    def _specials(self, s: Student) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        if s.profile != "normal":
            return out
        for kind, p in (("big", 0.15), ("night", 0.1), ("rapid", 0.06), ("far", 0.05)):
            if self.rng.random() < p:
                out[self.rng.randint(30, TERM_DAYS - 1)].append(kind)
        return out

    def _special(self, s: Student, day: date, kind: str) -> None:
        rng = self.rng
        base = datetime(day.year, day.month, day.day)
        if kind == "big":
            at = base + timedelta(hours=rng.randint(13, 16), minutes=rng.randint(0, 59))
            self._topup(s, at - timedelta(minutes=30), 80000)
            p = self._pay(s, at, rng.randint(15000, 60000), "supermarket", SHOP)
            self._episode("big_spend", s, [p])
        elif kind == "night":
            at = base + timedelta(hours=rng.randint(1, 3), minutes=rng.randint(0, 59))
            self._episode(
                "night_spend", s, [self._pay(s, at, rng.randint(800, 3000), "other", SHOP)]
            )
        elif kind == "rapid":
            at = base + timedelta(hours=15, minutes=rng.randint(0, 30))
            spree = [
                self._pay(
                    s, at + timedelta(seconds=40 * i), rng.randint(200, 900), "supermarket", SHOP
                )
                for i in range(rng.randint(6, 9))
            ]
            self._episode("rapid_payments", s, spree)
        elif kind == "far":
            at = base + timedelta(hours=12, minutes=rng.randint(0, 20))
            a = self._pay(s, at, rng.randint(800, 1500), "canteen", CANTEENS[0])
            b = self._pay(
                s,
                at + timedelta(minutes=rng.randint(2, 6)),
                rng.randint(500, 3000),
                "supermarket",
                FAR,
            )
            self._episode("far_apart", s, [a, b])


def _score(
    found: dict[str, int],
    correct: dict[str, int],
    caught: dict[str, int],
    total: dict[str, int],
    rule: str,
) -> dict[str, float]:
    p = correct[rule] / found[rule] if found[rule] else 1.0
    r = caught[rule] / total[rule] if total[rule] else 1.0
    return {
        "alerts": found[rule],
        "episodes": total[rule],
        "precision": round(p, 3),
        "recall": round(r, 3),
    }


def run(n: int, seed: int) -> dict[str, object]:
    campus = Campus(n, seed)
    campus.generate()
    cfg = rules.all_on()
    found: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    hit: dict[str, set[tuple[int, int]]] = defaultdict(set)
    alerts_per_student: dict[int, int] = defaultdict(int)
    below = int(DEFAULTS["low_balance"]["below"])
    low_total = 0
    for s in campus.students:
        keys: set[tuple[str, str]] = set()
        history: list[Spend] = []
        for pay in s.payments:
            recent = [p for p in history if p.local > pay.local - timedelta(days=28)]
            for f in events.payment_findings(cfg, pay, recent):
                if (f.rule, f.key) in keys:
                    continue
                keys.add((f.rule, f.key))
                found[f.rule] += 1
                alerts_per_student[s.id] += 1
                tag = _tag_of(s, f)
                if tag is not None and tag[0] == f.rule:
                    correct[f.rule] += 1
                    hit[f.rule].add((s.id, tag[1]))
            history.append(pay)
        # balance rule on the real replay of money in and out
        low_total += _low_balance(s, cfg, found, correct, hit, alerts_per_student, below)
    _no_meal(campus, cfg, found, correct, hit, alerts_per_student)
    _hooks(campus, cfg, found, correct, hit)
    total = {r: len(v) for r, v in campus.episodes.items()}
    total["low_balance"] = low_total
    total["arrears"] = campus.arrears_truth
    total["offline_overdraft"] = campus.overdraft_truth
    caught = {r: len(v) for r, v in hit.items()}
    caught = defaultdict(int, caught)
    per_rule = {
        r: _score(found, correct, caught, defaultdict(int, total), r) for r in rules.ALERT_RULES
    }
    hardship = _hardship(campus)
    weeks = TERM_DAYS / 7
    per_week = sorted(alerts_per_student.get(s.id, 0) / weeks for s in campus.students)
    return {
        "students": n,
        "days": TERM_DAYS,
        "payments": sum(len(s.payments) for s in campus.students),
        "rules": per_rule,
        "hardship": hardship,
        "median_alerts_per_student_week": round(per_week[len(per_week) // 2], 3),
        "min_precision": min(v["precision"] for v in per_rule.values()),
        "min_recall": min(v["recall"] for v in per_rule.values()),
        "dieting_proposed": hardship["dieting_proposed"],
    }


def _tag_of(s: Student, f: rules.Finding) -> tuple[str, int] | None:
    ids = f.facts.get("payment_ids") or [f.facts.get("payment_id")]
    tags = [s.tags[i] for i in ids if i in s.tags]
    return tags[-1] if tags else None


def _low_balance(
    s: Student,
    cfg: rules.Config,
    found: dict[str, int],
    correct: dict[str, int],
    hit: dict[str, set[tuple[int, int]]],
    per: dict[int, int],
    below: int,
) -> int:
    """Replays the purse; an injected episode is a fall below the threshold between two top-ups
    of a student who lets the balance run low."""
    moves = sorted(
        [(at, 0, mid) for at, mid in s.money_in] + [(p.local, 1, p.id) for p in s.payments]
    )
    balance = 30000
    episode = 0
    fell: set[int] = set()
    keys: set[str] = set()
    by_id = {p.id: p for p in s.payments}
    history: list[Spend] = []
    for _, kind, ref in moves:
        if kind == 0:
            balance += s.topups[ref]
            episode = ref
            continue
        pay = by_id[ref]
        balance -= pay.amount
        history.append(pay)
        spent = events.pace(history[:-1], pay, 14)
        if balance < below:
            fell.add(episode)
        f = rules.low_balance(cfg, available=balance, spent_recent=spent, episode=episode)
        if f is not None and f.key not in keys:
            keys.add(f.key)
            found["low_balance"] += 1
            per[s.id] += 1
            if s.lets_run_low:
                correct["low_balance"] += 1
                hit["low_balance"].add((s.id, episode))
    return len(fell) if s.lets_run_low else 0


def _no_meal(
    campus: Campus,
    cfg: rules.Config,
    found: dict[str, int],
    correct: dict[str, int],
    hit: dict[str, set[tuple[int, int]]],
    per: dict[int, int],
) -> None:
    for s in campus.students:
        if s.profile != "normal":
            continue
        by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
        for p in s.payments:
            by_day[p.local.date()][0 if p.channel == "canteen" else 1] += 1
        keys: set[str] = set()
        for d in range(14, TERM_DAYS):
            today = TERM_START + timedelta(days=d)
            since = today - timedelta(days=daily.LOOKBACK_DAYS)
            uses = {
                s.id: [daily.DayUse(k, v[0], v[1]) for k, v in by_day.items() if since < k <= today]
            }
            f = daily.no_meal_findings(cfg, uses, today=today).get(s.id)
            if f is None or f.key in keys:
                continue
            keys.add(f.key)
            found["no_meal"] += 1
            per[s.id] += 1
            for first, last, _ in campus.skips.get(s.id, []):
                if first <= today <= last + timedelta(days=2):
                    correct["no_meal"] += 1
                    hit["no_meal"].add((s.id, (first - TERM_START).days))


def _hooks(
    campus: Campus,
    cfg: rules.Config,
    found: dict[str, int],
    correct: dict[str, int],
    hit: dict[str, set[tuple[int, int]]],
) -> None:
    rng = campus.rng
    today = TERM_START + timedelta(days=TERM_DAYS)
    campus.arrears_truth = campus.overdraft_truth = 0
    for s in campus.students:
        owes = rng.random() < 0.1
        amount = rng.randint(50000, 600000) if owes else 0
        campus.arrears_truth += owes
        f = rules.arrears(
            cfg,
            overdue_amount=amount,
            oldest_due_date=today - timedelta(days=rng.randint(1, 60)),
            reason="学费",
            today=today,
        )
        if f is not None:
            found["arrears"] += 1
            correct["arrears"] += owes
            if owes:
                hit["arrears"].add((s.id, 0))
        short = rng.random() < 0.03
        shortfall = rng.randint(10, 800) if short else 0
        campus.overdraft_truth += short
        g = rules.offline_overdraft(
            cfg,
            shortfall=shortfall,
            amount=1200,
            device="POS-1",
            at=datetime(2026, 4, 1, 12),
            ref=f"POS-1:{s.id}",
        )
        if g is not None:
            found["offline_overdraft"] += 1
            correct["offline_overdraft"] += short
            if short:
                hit["offline_overdraft"].add((s.id, 0))


def _hardship(campus: Campus) -> dict[str, object]:
    values = DEFAULTS["hardship"]
    months = [
        (date(2026, 3, 2), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 5, 1)),
        (date(2026, 5, 1), date(2026, 6, 1)),
    ]
    out: dict[str, object] = {}
    dieting_proposed = dieting_before = 0
    for method in ("njust", "xidian"):
        tp = fp = fn = 0
        for s in campus.students:
            excluded = (
                ["diet"]
                if s.profile == "dieting"
                else ["off_campus"]
                if s.profile == "off_campus"
                else []
            )
            for first, end in months:
                mine = [p for p in s.payments if first <= p.local.date() < end]
                canteen = [(p.local, p.amount) for p in mine if p.channel == "canteen"]
                idle = (end - max(p.local.date() for p in mine)).days if mine else 99
                m = hardship_rules.month_of(s.id, canteen, (end - first).days, idle)
                verdict = hardship_rules.preset(method, m, values, excluded)
                raw = hardship_rules.preset(method, m, values)
                truth = s.profile == "hardship"
                if s.profile == "dieting":
                    dieting_before += raw is not None
                    dieting_proposed += verdict is not None
                tp += truth and verdict is not None
                fp += (not truth) and verdict is not None
                fn += truth and verdict is None
        out[method] = {
            "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
            "candidates": tp + fp,
        }
    out["dieting_flagged_without_exclusions"] = dieting_before
    out["dieting_proposed"] = dieting_proposed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    report = run(args.students, args.seed)
    for rule, score in report["rules"].items():  # type: ignore[attr-defined]
        print(
            f"{rule:18} alerts {score['alerts']:5}  episodes {score['episodes']:5}"
            f"  precision {score['precision']:.3f}  recall {score['recall']:.3f}"
        )
    for method in ("njust", "xidian"):
        h = report["hardship"][method]  # type: ignore[index]
        print(
            f"hardship {method:9} candidates {h['candidates']:4}"
            f"  precision {h['precision']:.3f}  recall {h['recall']:.3f}"
        )
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()

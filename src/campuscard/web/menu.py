"""Menus by role. Every page is a menu item (or belongs to one); the same entry decides what
the menu shows and who may open the page, so a role never sees or reaches another's pages.

Add an item with ``add(area, key, href, roles, order)``: ``key`` is also the translation key
of its label; ``href`` may contain ``{school}`` (the school code in admin URLs).
"""

from __future__ import annotations

from dataclasses import dataclass

from campuscard.platform.actors import Actor
from campuscard.platform.errors import Forbidden

AREAS = ("student", "merchant", "kiosk", "admin")
OPERATORS = frozenset({"school_admin", "card_center", "settlement", "teacher", "counsellor"})


@dataclass(frozen=True)
class MenuItem:
    area: str
    key: str
    href: str
    roles: frozenset[str]
    order: int


_ITEMS: dict[str, MenuItem] = {}


def add(area: str, key: str, href: str, roles: set[str] | frozenset[str], order: int) -> None:
    if area not in AREAS:
        raise ValueError(f"unknown menu area {area!r}")
    _ITEMS[key] = MenuItem(area, key, href, frozenset(roles), order)


def item(key: str) -> MenuItem:
    return _ITEMS[key]


def allowed(actor: Actor, entry: MenuItem, school_id: int | None = None) -> bool:
    """Explicit grants only: a school admin sees the operator pages because the items list
    school_admin, not through the API's role inheritance; platform admins see the console."""
    if actor.is_platform_admin:
        return entry.area == "admin"
    return any(
        g.role in entry.roles and (school_id is None or g.school_id == school_id)
        for g in actor.grants
    )


def require(actor: Actor, key: str, school_id: int | None = None) -> None:
    if not allowed(actor, _ITEMS[key], school_id):
        raise Forbidden("this page is not available to your role", code="PAGE_FORBIDDEN")


def menu_for(actor: Actor, area: str, school_id: int | None = None) -> list[MenuItem]:
    return sorted(
        (i for i in _ITEMS.values() if i.area == area and allowed(actor, i, school_id)),
        key=lambda i: i.order,
    )


def home_for(actor: Actor) -> str:
    """Where a user lands after signing in: the first area their roles open."""
    roles = actor.roles
    if actor.is_platform_admin or roles & OPERATORS:
        return "/admin/"
    if roles & {"merchant_staff", "merchant_manager"}:
        return "/pos/"
    if roles & {"cardholder", "guardian"}:
        return "/m/"
    return "/account"

"""The page toolkit every web module uses: who is signed in, the language, CSRF, rendering.

A page route takes one of three dependencies:

- ``AnyPage``   anyone (sign-in page, language switch); ``page.user`` may be None
- ``UserPage``  signed in; otherwise the browser is sent to /login?next=…
- ``PostPage``  signed in *and* the request carries the session's CSRF token (form field
  ``csrf_token`` or header ``X-CSRF-Token``, which the layout sets for every HTMX request)

and answers ``render(page, "area/template.html", **context)``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from campuscard.edge.deps import AppSettings, Pool
from campuscard.edge.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    check_csrf,
    resolve_cookie_session,
    session_token,
)
from campuscard.ledger.money import fmt
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import i18n, menu

WEB_DIR = Path(__file__).parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
PRE_CSRF_COOKIE = "cc_csrf"  # double-submit token for forms shown before sign-in

SECURITY_HEADERS = {
    # scripts and styles only from our own /static: no inline code can run
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class LoginRequired(Exception):
    """Raised by UserPage when nobody (or an expired session) is signed in."""

    def __init__(self, next_url: str, expired: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


def _yuan(fen: int | None) -> str:
    """The bare amount, ``1234.50``: for a form field's value and a CSV, not for reading."""
    return fmt(int(fen or 0))


def fen_of(value: int | str | Decimal | None) -> int:
    """Fen from a view's yuan text ("-12.30"); refuses part of a fen."""
    if value is None or value == "":
        return 0
    fen = Decimal(str(value)) * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"not a whole number of fen: {value!r}")
    return int(fen)


@pass_context
def _money(context: Context, fen: int | str | Decimal | None) -> str:
    """Fen as the page's language writes money (``i18n.format_money``): ¥1,234.50 on a Chinese
    page, CN¥1,234.50 on an English one."""
    return i18n.format_money(str(context.get("lang") or i18n.DEFAULT_LOCALE), int(fen or 0))


@pass_context
def _money_text(context: Context, yuan: int | str | Decimal | None, *, whole: bool = False) -> str:
    """A view's yuan text ("12.30", as the API answers) written as ``|money`` writes fen;
    ``whole=True`` leaves the fen off a round amount (a quick-amount button: ¥50)."""
    locale = str(context.get("lang") or i18n.DEFAULT_LOCALE)
    return i18n.format_money(locale, fen_of(yuan), whole=whole)


_LATE_FEE_PART = re.compile(r"\((\d+)/(\d+)\)")


@pass_context
def _bill_line_name(context: Context, line: dict[str, Any]) -> str:
    """A bill line's name: the fee item's, as the school typed it; a late fee the system added
    (stored as "滞纳金 late fee (1/3)") worded in the page's language."""
    name = str(line.get("name") or "")
    if line.get("kind") != "late_fee":
        return name
    locale = str(context.get("lang") or i18n.DEFAULT_LOCALE)
    part = _LATE_FEE_PART.search(name)
    if part is None:
        return i18n.translate(locale, "bill.kind.late_fee")
    return i18n.translate(locale, "bill.late_fee_line", seq=part[1], of=part[2])


@pass_context
def _word(context: Context, stored: dict[str, Any] | str | None) -> str:
    """A stored message (``i18n.message``, or an older text per language) in the page's
    language."""
    return i18n.word(str(context.get("lang") or i18n.DEFAULT_LOCALE), stored)


def _local_time(value: datetime | str | None, tz: str = "Asia/Shanghai") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # a view's ISO text (an API-shaped dict)
        value = datetime.fromisoformat(value)
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["yuan"] = _yuan
env.filters["money"] = _money
env.filters["money_text"] = _money_text
env.filters["bill_line_name"] = _bill_line_name
env.filters["localtime"] = _local_time
env.filters["word"] = _word
# audit details as readable text: Chinese stays Chinese (no \uXXXX escapes); autoescaped
env.filters["json_text"] = lambda value: json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class Page:
    """Everything a template needs about this request."""

    request: Request
    locale: str
    user: Actor | None = None
    csrf: str = ""
    expired: bool = False
    school_id: int | None = None
    school_code: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def t(self, key: str, **params: Any) -> str:
        return i18n.translate(self.locale, key, **params)

    def day(self, value: date, skeleton: str = "MMMEd") -> str:
        """A date in this page's language (``i18n.format_day``)."""
        return i18n.format_day(self.locale, value, skeleton)

    def money(self, fen: int) -> str:
        """An amount in this page's language (``i18n.format_money``)."""
        return i18n.format_money(self.locale, fen)

    def tn(self, key: str, count: int, **params: Any) -> str:
        """A plural message: the form the locale's CLDR rule picks for ``count``."""
        return i18n.translate_plural(self.locale, key, count, **params)

    def err(
        self, error: DomainError | str | None, message: str = "", field: str | None = None
    ) -> str:
        """A refusal's text in this page's language (``i18n.error_text``): give the error, or
        its code, message and field."""
        if error is None:
            return ""
        if isinstance(error, DomainError):
            return i18n.error_text(self.locale, error.code, error.message, error.field)
        return i18n.error_text(self.locale, error, message, field)

    def require(self, key: str) -> Actor:
        """The signed-in actor, if the menu item ``key`` is theirs (else 403)."""
        if self.user is None:
            raise LoginRequired(self.request.url.path, expired=False)
        menu.require(self.user, key, self.school_id)
        return self.user


async def _page(request: Request, pool: Pool, settings: AppSettings) -> Page:
    locale = i18n.choose_locale(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )
    page = Page(request=request, locale=locale)
    token = session_token(request)
    if token:
        try:
            page.user, page.csrf = await resolve_cookie_session(pool, settings, token)
        except DomainError:
            page.expired = True
    return page


async def _user_page(page: Annotated[Page, Depends(_page)]) -> Page:
    if page.user is None:
        target = page.request.url.path
        if page.request.url.query:
            target += "?" + page.request.url.query
        raise LoginRequired(target, page.expired)
    return page


async def _post_page(page: Annotated[Page, Depends(_user_page)]) -> Page:
    request = page.request
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    check_csrf(
        sent,
        page.csrf,
        message="the form has expired or did not come from this site; "
        "reload the page and try again",
        field=CSRF_FIELD,
    )
    return page


AnyPage = Annotated[Page, Depends(_page)]
UserPage = Annotated[Page, Depends(_user_page)]
PostPage = Annotated[Page, Depends(_post_page)]


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site paths: never redirect to another host after sign-in (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


_AREA_PREFIXES = (("/m/", "student"), ("/pos/", "merchant"), ("/admin/", "admin"))


def area_of(path: str) -> str:
    """The area a URL belongs to (the error page keeps that area's menu)."""
    return next((area for prefix, area in _AREA_PREFIXES if path.startswith(prefix)), "")


def render(
    page: Page, template: str, *, status: int = 200, area: str | None = None, **context: Any
) -> HTMLResponse:
    if area is None:
        area = template.split("/", 1)[0] if "/" in template else ""
    user = page.user
    items = menu.menu_for(user, area, page.school_id) if user is not None and area else []
    if not page.school_code:  # no school chosen yet (platform admin): no per-school links
        items = [i for i in items if "{school}" not in i.href]
    html = env.get_template(template).render(
        page=page,
        t=page.t,
        tn=page.tn,
        err_text=page.err,
        lang=page.locale,
        user=user,
        csrf=page.csrf,
        menu_items=items,
        area=area,
        school_code=page.school_code,
        path=page.request.url.path,
        here=quote(_here(page.request), safe=""),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _here(request: Request) -> str:
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def redirect(url: str, *, request: Request | None = None) -> Response:
    """303 to ``url``; an HTMX request gets HX-Redirect so the whole page changes."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def new_pre_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_pre_csrf(request: Request, sent: str | None) -> None:
    check_csrf(
        sent,
        request.cookies.get(PRE_CSRF_COOKIE) or "",
        message="the form has expired; reload the page and try again",
        field=CSRF_FIELD,
    )


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


# Forms send empty strings for untouched fields ("?class=&from="): page queries take text and
# parse it here, so an empty field means "no filter" and a bad one names itself.
def field_error(page: Page, error: DomainError | None, prefix: str) -> str:
    """A refusal as a form shows it beside its field: the server's own words on an English page;
    on a Chinese page the form's own text for this code and field when it has one
    (``<prefix>.err.<CODE>.<field>``: a taken name says so, not "a conflict"), else
    ``page.err``. A field such as ``week.3`` looks up ``week``."""
    if error is None:
        return ""
    if page.locale != "en" and error.field:
        key = f"{prefix}.err.{error.code}.{error.field.split('.', 1)[0]}"
        text = page.t(key)
        if text != key.rsplit(".", 1)[-1]:
            return text
    return page.err(error)


def opt_int(value: str | None, field: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationFailed(f"{field} must be a whole number", field=field)
    return int(value)


def opt_date(value: str | None, field: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise ValidationFailed(f"{field} must be a date like 2026-09-01", field=field) from err


def opt_choice(value: str | None, field: str, choices: tuple[str, ...]) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if value not in choices:
        raise ValidationFailed(f"{field} must be one of {', '.join(choices)}", field=field)
    return value

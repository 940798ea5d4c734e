"""Who is calling: a signed-in user, a terminal or the system, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass, field

from campuscard.platform.errors import Forbidden

# Roles that act on a school. platform_admin acts on every school.
SCHOOL_ROLES = frozenset(
    {
        "school_admin",
        "card_center",
        "settlement",
        "teacher",
        "merchant_staff",
        "merchant_manager",
        "cardholder",
        "guardian",
        "counsellor",
    }
)
OPERATOR_ROLES = frozenset({"school_admin", "card_center", "settlement", "teacher", "counsellor"})
# What a merchant's staff hold while their merchant is not approved (pending, rejected, closed):
# no merchant role works, the applicant sees only its own application (auth.load_actor)
MERCHANT_APPLICANT = "merchant_applicant"


@dataclass(frozen=True)
class Grant:
    role: str
    school_id: int | None
    merchant_id: int | None = None


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: int | None = None
    school_id: int | None = None
    person_id: int | None = None
    grants: frozenset[Grant] = field(default_factory=frozenset)
    locale: str = "zh-CN"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(g.role for g in self.grants)

    @property
    def is_platform_admin(self) -> bool:
        return any(g.role == "platform_admin" for g in self.grants)

    def has(self, *roles: str, school_id: int | None = None) -> bool:
        """True if the actor holds one of ``roles`` in ``school_id`` (or platform-wide)."""
        if self.is_platform_admin:
            return True
        wanted = set(roles)
        # a school admin may do what any operator of that school may do
        if wanted & OPERATOR_ROLES:
            wanted.add("school_admin")
        return any(
            g.role in wanted and (school_id is None or g.school_id == school_id)
            for g in self.grants
        )

    def require(self, *roles: str, school_id: int | None) -> None:
        if not self.has(*roles, school_id=school_id):
            raise Forbidden(
                f"this needs the role {' or '.join(roles)} in this school",
                code="ROLE_REQUIRED",
            )

    @property
    def is_merchant_applicant(self) -> bool:
        """Signed in only for a merchant application that no operator has approved."""
        return bool(self.grants) and all(g.role == MERCHANT_APPLICANT for g in self.grants)

    def merchant_ids(self) -> frozenset[int]:
        return frozenset(g.merchant_id for g in self.grants if g.merchant_id is not None)

    def schools(self) -> frozenset[int]:
        return frozenset(g.school_id for g in self.grants if g.school_id is not None)


SYSTEM = Actor(name="system")

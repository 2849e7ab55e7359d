"""Many accounts at once: an owner gives a list (JSON rows or CSV with the
columns username, email, role); new accounts are made with generated
passwords, shown once; existing users are added with the role.

Every row is checked before anything is written, and a bad row refuses the
whole list, naming the row. Passwords are hashed before the transaction, so
the slow part holds no lock.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from rest_framework import status

from backend.common.errors import ServiceError
from backend.projects.invitations import role_rank
from backend.projects.models import Membership, Project
from backend.projects.permissions import ANNOTATOR, ROLES, Action, project_require

MAX_BULK_MEMBERS = 1000
MAX_USERNAME_LENGTH = 150  # Django's User.username
MAX_EMAIL_LENGTH = 254
# No look-alikes (0/o, 1/l/i): the passwords are read off a sheet and typed.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_GROUPS = 3  # xxxx-xxxx-xxxx: about 59 bits
CSV_COLUMNS = ("username", "email", "role")


@dataclass(frozen=True)
class MemberRow:
    """One person to add; `where` names the row in errors ("row 3", "line 4")."""

    where: str
    username: str
    email: str = ""
    role: str = ANNOTATOR


@dataclass
class BulkResult:
    created: list[tuple[str, str]] = field(default_factory=list)  # (username, password)
    existing: list[tuple[str, str]] = field(default_factory=list)  # (username, role now)


def member_rows_from_csv(text: str) -> list[MemberRow]:
    """Rows of a CSV text: a header naming the columns (username, email, role;
    only username is required), or no header and the columns in that order.
    Blank lines are skipped; a missing role is annotator."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    if not lines:
        raise ServiceError("The list is empty.")
    columns = list(CSV_COLUMNS)
    header = [cell.strip().lower() for cell in lines[0][1]]
    if "username" in header:
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if unknown:
            raise ServiceError(f"Unknown CSV column {unknown[0]!r}: use username, email, role.")
        columns, lines = header, lines[1:]
    rows = []
    for number, cells in lines:
        values = dict(zip(columns, (cell.strip() for cell in cells), strict=False))
        rows.append(
            MemberRow(
                where=f"line {number}",
                username=values.get("username", ""),
                email=values.get("email", ""),
                role=values.get("role") or ANNOTATOR,
            )
        )
    return rows


def member_rows_check(rows: Sequence[MemberRow]) -> None:
    """ServiceError naming the first bad row: username, email, role, duplicates, count."""
    if not rows:
        raise ServiceError("The list is empty.")
    if len(rows) > MAX_BULK_MEMBERS:
        raise ServiceError(f"At most {MAX_BULK_MEMBERS} people at once ({len(rows)} given).")
    seen: dict[str, str] = {}
    for row in rows:
        problem = _row_problem(row)
        if problem is None and row.username.lower() in seen:
            problem = f"{row.username!r} is also on {seen[row.username.lower()]}"
        if problem is not None:
            raise ServiceError(f"{row.where.capitalize()}: {problem}. Nothing was added.")
        seen[row.username.lower()] = row.where


def _row_problem(row: MemberRow) -> str | None:
    if not row.username:
        return "the username is missing"
    if len(row.username) > MAX_USERNAME_LENGTH:
        return f"a username has at most {MAX_USERNAME_LENGTH} characters"
    try:
        UnicodeUsernameValidator()(row.username)
    except ValidationError:
        return f"{row.username!r} is not a valid username (letters, digits and @.+-_ only)"
    if row.email:
        try:
            validate_email(row.email)
        except ValidationError:
            return f"{row.email!r} is not a valid email address"
        if len(row.email) > MAX_EMAIL_LENGTH:
            return f"an email address has at most {MAX_EMAIL_LENGTH} characters"
    if row.role not in ROLES:
        return f"the role {row.role!r} is not one of {', '.join(ROLES)}"
    return None


def password_generate() -> str:
    groups = (
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(PASSWORD_GROUPS)
    )
    return "-".join(groups)


class GeneratedPasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 with fewer rounds, for generated passwords only: Django's count
    (about half a second a hash) would make a list of 1,000 a request of
    minutes. A generated password has about 59 bits of entropy, so guessing
    one from a stolen hash still costs some 2^59 x 10,000 rounds; at its first
    login Django re-hashes it with the full count (same algorithm, so every
    server that checks PBKDF2 checks these)."""

    iterations = 10_000


def _hashed(passwords: Iterable[str]) -> list[str]:
    hasher = GeneratedPasswordHasher()
    return [make_password(password, hasher=hasher) for password in passwords]


def project_members_bulk_add(
    *, project: Project, user: AbstractBaseUser | None, rows: Sequence[MemberRow]
) -> BulkResult:
    """Add every row's person to the project, making the accounts that do not
    exist. `user` is the owner asking; None is the server's own command line
    (manage.py add_members), which the permission table does not govern.
    A member already in the project keeps the higher of the two roles."""
    if user is not None:
        project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    member_rows_check(rows)
    existing = _existing_users([row.username for row in rows])
    for row in rows:
        found = existing.get(row.username.lower())
        if found is not None and not found.is_active:
            raise ServiceError(
                f"{row.where.capitalize()}: the account {row.username!r} is deactivated. "
                "Nothing was added."
            )
    new_rows = [row for row in rows if row.username.lower() not in existing]
    passwords = [password_generate() for _ in new_rows]
    accounts = [
        NewAccount(row=row, password=password, hashed=hashed)
        for row, password, hashed in zip(new_rows, passwords, _hashed(passwords), strict=True)
    ]
    try:
        return _write(project=project, added_by=user, rows=rows, existing=existing, new=accounts)
    except IntegrityError as exc:
        raise ServiceError(
            "Some of these usernames were taken meanwhile: try again. Nothing was added.",
            status_code=status.HTTP_409_CONFLICT,
        ) from exc


@dataclass(frozen=True)
class NewAccount:
    row: MemberRow
    password: str  # shown once, never stored
    hashed: str


def _existing_users(usernames: list[str]) -> dict[str, AbstractBaseUser]:
    """The accounts with these usernames by lower-cased name (sign-up, too,
    refuses a name that differs from another only in case)."""
    users = (
        get_user_model()
        .objects.annotate(lowered=Lower("username"))
        .filter(lowered__in=[name.lower() for name in usernames])
    )
    return {user.get_username().lower(): user for user in users}


@transaction.atomic
def _write(
    *,
    project: Project,
    added_by: AbstractBaseUser | None,
    rows: Sequence[MemberRow],
    existing: dict[str, AbstractBaseUser],
    new: list[NewAccount],
) -> BulkResult:
    model = get_user_model()
    normalize = model.objects.normalize_email
    made = model.objects.bulk_create(
        model(username=a.row.username, email=normalize(a.row.email), password=a.hashed) for a in new
    )
    now = timezone.now()

    def membership(person: AbstractBaseUser, role: str) -> Membership:
        return Membership(project=project, user=person, role=role, added_by=added_by, added_at=now)

    fresh = [membership(person, a.row.role) for person, a in zip(made, new, strict=True)]
    result = BulkResult(created=[(a.row.username, a.password) for a in new])
    current = {
        m.user_id: m
        for m in Membership.objects.select_for_update().filter(
            project=project, user__in=list(existing.values())
        )
    }
    for row in rows:
        person = existing.get(row.username.lower())
        if person is None:
            continue
        held = current.get(person.pk)
        if held is None:
            fresh.append(membership(person, row.role))
        elif role_rank(row.role) > role_rank(held.role):
            held.role = row.role
            held.save(update_fields=["role"])
        result.existing.append((person.get_username(), row.role if held is None else held.role))
    Membership.objects.bulk_create(fresh)
    return result

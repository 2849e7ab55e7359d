"""`python manage.py add_members --project ID --csv FILE [--added-by USERNAME] [--out FILE]`

Adds the people of a CSV (columns username, email, role; as the project
page's members panel takes them) to a project, making the accounts that do
not exist, through the same service as POST /api/projects/{id}/members/bulk/.
The new accounts' one-time passwords are written as CSV (username,password)
to stdout or --out; what was done goes to stderr. Nothing is added if any
row is bad.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.common.errors import ServiceError
from backend.projects.bulk_members import member_rows_from_csv, project_members_bulk_add
from backend.projects.models import Project


class Command(BaseCommand):
    help = "Add many people to a project from a CSV; print the new accounts' passwords."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--csv", required=True, help="a CSV file (- for stdin)")
        parser.add_argument(
            "--added-by",
            default=None,
            help="an owner of the project, shown as who added them (default: nobody)",
        )
        parser.add_argument("--out", default=None, help="write the passwords here, not stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"project {options['project']} does not exist")
        added_by = None
        if options["added_by"]:
            added_by = get_user_model().objects.filter(username=options["added_by"]).first()
            if added_by is None:
                raise CommandError(f"there is no user named {options['added_by']!r}")
        try:
            rows = member_rows_from_csv(_read(options["csv"]))
            result = project_members_bulk_add(project=project, user=added_by, rows=rows)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if options["out"]:
            with Path(options["out"]).open("w", newline="", encoding="utf-8") as out:
                _write_passwords(out, result.created)
        else:
            _write_passwords(self.stdout, result.created)
        self.stderr.write(
            f"{project.name}: {len(result.created)} accounts created, "
            f"{len(result.existing)} existing users added or kept."
        )


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {name}: {exc}") from exc


def _write_passwords(out: Any, created: list[tuple[str, str]]) -> None:
    """`out`: a text file or the command's stdout (each row is one write)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["username", "password"])
    writer.writerows(created)

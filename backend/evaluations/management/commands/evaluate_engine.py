"""`python manage.py evaluate_engine --project ID [--model NAME] [--max-objects N] [--json]`

Runs the simulated annotator (worker/evaluation.py) over the project's
accepted instances with one engine, records an EngineEvaluation and prints
its metrics: a table, or with --json one JSON object on stdout and nothing
else (progress and library chatter go to stderr).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.common.errors import ServiceError
from backend.evaluations.selectors import evaluation_summary
from backend.evaluations.services import engine_evaluate
from backend.projects.models import Project
from backend.segmentation.selectors import (
    engine_spec_for_project,
    engine_spec_named,
    installed_model_names,
)
from worker.engines.spec import EngineSpec
from worker.evaluation import MAX_CLICKS

# (metric, label, format) for the table.
_ROWS = (
    ("noc85", "NoC@85 (clicks to IoU 0.85)", "{:.2f}"),
    ("noc90", "NoC@90 (clicks to IoU 0.90)", "{:.2f}"),
    ("miou_at_1", "mean IoU after 1 click", "{:.3f}"),
    ("miou_at_3", "mean IoU after 3 clicks", "{:.3f}"),
    ("miou_at_5", "mean IoU after 5 clicks", "{:.3f}"),
    ("never_90_share", "objects never reaching 0.90", "{:.1%}"),
    ("box_iou", "mean IoU of a box prompt", "{:.3f}"),
)


class Command(BaseCommand):
    help = "Measure how many clicks an engine needs on a project's accepted instances."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument(
            "--model",
            default="",
            help='an installed model name or "classical" (default: the project\'s engine)',
        )
        parser.add_argument("--max-objects", type=int, default=None, help="evaluate the first N")
        parser.add_argument("--max-clicks", type=int, default=MAX_CLICKS)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"project {options['project']} does not exist")
        spec = self._spec(project, options["model"])
        as_json = bool(options["json"])

        def progress(line: str) -> None:
            if not as_json:
                self.stderr.write(line)

        # With --json, stdout carries the JSON object only.
        quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
        try:
            with quiet:
                evaluation = engine_evaluate(
                    project=project,
                    spec=spec,
                    max_objects=options["max_objects"],
                    max_clicks=options["max_clicks"],
                    progress=progress,
                )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        summary = evaluation_summary(evaluation)
        if as_json:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(_table(project, summary))

    def _spec(self, project: Project, name: str) -> EngineSpec:
        if not name:
            return engine_spec_for_project(project)
        spec = engine_spec_named(name)
        if spec is None:
            known = ", ".join(installed_model_names())
            raise CommandError(f"unknown model {name!r}; installed: {known}")
        return spec


def _table(project: Project, summary: dict[str, Any]) -> str:
    images = summary["images"]
    lines = [
        f"{summary['model']} ({summary['engine_key']}) on project {project.pk} "
        f'"{project.name}": {summary["objects"]} objects in {images} '
        f"image{'s' if images != 1 else ''}, {summary['seconds']:.1f} s, "
        f"at most {summary['max_clicks']} clicks",
    ]
    width = max(len(label) for _, label, _ in _ROWS)
    for key, label, fmt in _ROWS:
        value = summary[key]
        lines.append(f"  {label:<{width}}  {'-' if value is None else fmt.format(value)}")
    return "\n".join(lines)

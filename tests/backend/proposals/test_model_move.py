"""Moving ProposalJob and EngineEvaluation out of the segmentation app (issue
"Reshape the house") keeps every row: a database filled before the move
migrates with nothing lost, and new rows follow the old ones."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backend.evaluations.models import EngineEvaluation
from backend.proposals.models import ProposalJob

BEFORE_THE_MOVE = [
    ("segmentation", "0006_embedding_queued_at"),
    ("proposals", None),
    ("evaluations", None),
]


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


def _latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _old_state_nodes(executor: MigrationExecutor) -> list[tuple[str, str]]:
    """Every other app at its latest, segmentation just before the move
    (training, which needs a later segmentation, left out)."""
    moved = {"segmentation", "proposals", "evaluations", "training"}
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in moved]
    return [*others, ("segmentation", "0006_embedding_queued_at")]


def _fill_old_tables(executor: MigrationExecutor) -> tuple[int, int]:
    """A job and an evaluation saved by the code before the move."""
    apps = executor.loader.project_state(_old_state_nodes(executor)).apps
    user = apps.get_model("auth", "User").objects.create(username="before-the-move")
    project = apps.get_model("projects", "Project").objects.create(name="Old", created_by=user)
    label = apps.get_model("projects", "Label").objects.create(project=project, name="cell")
    image = apps.get_model("images", "Image").objects.create(
        project=project,
        name="a.png",
        original_path="a",
        planes_path="p",
        display_path="d",
        format="png",
        width=4,
        height=3,
        dtype="uint8",
        uploaded_by=user,
    )
    job = apps.get_model("segmentation", "ProposalJob").objects.create(
        project=project,
        image=image,
        label=label,
        options={"min_area": 5},
        status="done",
        total_images=1,
        done_images=1,
        created_instances=7,
        created_by=user,
    )
    evaluation = apps.get_model("segmentation", "EngineEvaluation").objects.create(
        project=project,
        model_name="classical",
        engine_key="classical",
        metrics={"noc90": 3.5},
        object_count=12,
        created_by=user,
    )
    ContentType.objects.get_or_create(app_label="segmentation", model="proposaljob")
    return job.pk, evaluation.pk


@pytest.mark.django_db(transaction=True)
def test_jobs_and_evaluations_saved_before_the_move_are_all_there_after_it() -> None:
    try:
        job_id, evaluation_id = _fill_old_tables(_migrate(BEFORE_THE_MOVE))
        _latest()

        job = ProposalJob.objects.select_related("image", "label", "created_by").get(pk=job_id)
        assert (job.status, job.created_instances, job.options) == ("done", 7, {"min_area": 5})
        assert (job.image.name, job.label.name, job.created_by.username) == (
            "a.png",
            "cell",
            "before-the-move",
        )
        evaluation = EngineEvaluation.objects.get(pk=evaluation_id)
        assert (evaluation.metrics, evaluation.object_count) == ({"noc90": 3.5}, 12)
        assert ProposalJob._meta.db_table == "proposals_proposaljob"
        assert ContentType.objects.filter(app_label="proposals", model="proposaljob").exists()
        assert not ContentType.objects.filter(
            app_label="segmentation", model="proposaljob"
        ).exists()

        # The renamed table keeps counting ids where the old one stopped.
        newer = ProposalJob.objects.create(project=job.project, status="pending")
        assert newer.pk > job_id
        # Deleting the project still cascades to the moved rows.
        job.project.delete()
        assert not ProposalJob.objects.exists() and not EngineEvaluation.objects.exists()
    finally:
        _latest()


@pytest.mark.django_db(transaction=True)
def test_the_move_can_be_undone_with_the_rows_kept() -> None:
    try:
        job_id, _ = _fill_old_tables(_migrate(BEFORE_THE_MOVE))
        _latest()
        executor = _migrate(BEFORE_THE_MOVE)
        apps = executor.loader.project_state(_old_state_nodes(executor)).apps
        old = apps.get_model("segmentation", "ProposalJob").objects.get(pk=job_id)
        assert old.created_instances == 7
    finally:
        _latest()

"""ProposalJob and EngineEvaluation now belong to the proposals and
evaluations apps (their 0001 took them over in Django's state). Here the
segmentation app forgets them without touching their tables, and their
content types (and so any permissions granted on them) follow them."""

from django.db import migrations

MOVED = {"proposaljob": "proposals", "engineevaluation": "evaluations"}


def content_types_follow(apps, schema_editor) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        content_type.objects.filter(app_label="segmentation", model=model).update(
            app_label=app_label
        )


def content_types_return(apps, schema_editor) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        content_type.objects.filter(app_label=app_label, model=model).update(
            app_label="segmentation"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("segmentation", "0006_embedding_queued_at"),
        ("proposals", "0001_initial"),
        ("evaluations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ProposalJob"),
                migrations.DeleteModel(name="EngineEvaluation"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_follow, content_types_return),
    ]

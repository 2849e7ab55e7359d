from django.apps import AppConfig
from django.db.models.signals import post_delete


class DatasetsConfig(AppConfig):
    name = "backend.datasets"
    label = "datasets"

    def ready(self) -> None:
        from backend.datasets.models import Export
        from backend.datasets.retention import zip_remove

        post_delete.connect(zip_remove, sender=Export, dispatch_uid="datasets-export-zip")

from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "backend.evaluations"
    label = "evaluations"

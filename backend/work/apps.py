from django.apps import AppConfig


class WorkConfig(AppConfig):
    name = "backend.work"
    label = "work"

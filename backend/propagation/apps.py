from django.apps import AppConfig


class PropagationConfig(AppConfig):
    name = "backend.propagation"
    label = "propagation"

from django.apps import AppConfig


class ProposalsConfig(AppConfig):
    name = "backend.proposals"
    label = "proposals"

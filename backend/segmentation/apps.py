from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "backend.segmentation"
    label = "segmentation"

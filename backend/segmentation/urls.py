from django.urls import path

from backend.segmentation.apis import HealthApi

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
]

from django.urls import path

from backend.segmentation.apis import HealthApi, ModelListApi

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
    path("models/", ModelListApi.as_view(), name="api-models"),
]

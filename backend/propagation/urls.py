from django.urls import path

from backend.propagation.apis import ImagePropagateApi, PropagationJobApi

urlpatterns = [
    path(
        "images/<int:image_id>/propagate/", ImagePropagateApi.as_view(), name="api-image-propagate"
    ),
    path("propagation-jobs/<int:job_id>/", PropagationJobApi.as_view(), name="api-propagation-job"),
]

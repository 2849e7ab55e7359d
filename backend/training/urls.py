from django.urls import path

from backend.training.apis import (
    ModelAdoptApi,
    ModelCheckpointApi,
    ProjectModelsApi,
    ProjectTrainingApi,
    TrainingCancelApi,
    TrainingJobApi,
)

urlpatterns = [
    path("projects/<int:project_id>/training/", ProjectTrainingApi.as_view(),
         name="api-project-training"),
    path("training/<int:training_id>/", TrainingJobApi.as_view(), name="api-training-job"),
    path("training/<int:training_id>/cancel/", TrainingCancelApi.as_view(),
         name="api-training-cancel"),
    path("projects/<int:project_id>/models/", ProjectModelsApi.as_view(),
         name="api-project-models"),
    path("projects/<int:project_id>/models/<int:number>/adopt/", ModelAdoptApi.as_view(),
         name="api-model-adopt"),
    path("projects/<int:project_id>/models/<int:number>/checkpoint/",
         ModelCheckpointApi.as_view(), name="api-model-checkpoint"),
]  # fmt: skip

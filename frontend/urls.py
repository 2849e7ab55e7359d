from django.urls import include, path

from frontend import views

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("", views.project_list, name="project-list"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("images/<int:image_id>/", views.image_editor, name="image-editor"),
]

from django.contrib.auth.views import LoginView
from django.urls import include, path

from backend.accounts.forms import LoginForm
from frontend import join, views

urlpatterns = [
    path("accounts/login/", LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", views.project_list, name="project-list"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/quality/", views.project_quality, name="project-quality"),
    path("images/<int:image_id>/", views.image_editor, name="image-editor"),
    path("join/<str:code>/", join.join, name="join"),
]

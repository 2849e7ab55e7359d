from django.contrib import admin
from django.urls import include, path

from backend.accounts.forms import AdminLoginForm

# The admin's login tells a throttled user to wait (backend/accounts/throttle.py).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("backend.accounts.urls")),
    path("api/", include("backend.projects.urls")),
    path("api/", include("backend.images.urls")),
    path("api/", include("backend.annotations.urls")),
    path("api/", include("backend.segmentation.urls")),
    path("api/", include("backend.proposals.urls")),
    path("api/", include("backend.propagation.urls")),
    path("api/", include("backend.evaluations.urls")),
    path("api/", include("backend.training.urls")),
    path("api/", include("backend.work.urls")),
    path("api/", include("backend.quality.urls")),
    path("api/", include("backend.datasets.urls")),
    path("", include("frontend.urls")),
]

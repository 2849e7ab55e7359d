from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.projects.models import Project


class ImageStack(models.Model):
    """A multi-page file (time series, z-stack, hyperstack): one Image per plane.

    Each (t, z) plane is annotated as an ordinary 2D Image that points back
    here. `axes` names the plane indices ("TZ": t major, z minor) and `shape`
    their sizes, e.g. {"T": 6, "Z": 1}; channels stay inside each plane.
    `original_path` is the uploaded file (relative to MEDIA_ROOT), in a folder
    of its own; the planes' folders hold their planes.npy and display.png.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stacks")
    name = models.CharField(max_length=255)
    axes = models.CharField(max_length=8, default="TZ")
    shape = models.JSONField(default=dict)
    original_path = models.CharField(max_length=500)
    # How the file was read (axes in the file, series taken), for the annotator.
    note = models.CharField(max_length=500, blank=True, default="")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def plane_count(self) -> int:
        return int(self.shape.get("T", 1)) * int(self.shape.get("Z", 1))


class Image(models.Model):
    """An uploaded image, stored as its original file plus decoded planes.

    `planes_path` holds a (C, H, W) array in the original dtype (relative to
    MEDIA_ROOT); `display_path` an 8-bit RGB PNG rendered for the browser.
    Files derived from one image belong in `Path(planes_path).parent`, its own
    folder: a plane of a stack shares `original_path` with the other planes.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    name = models.CharField(max_length=255)
    original_path = models.CharField(max_length=500)
    planes_path = models.CharField(max_length=500)
    display_path = models.CharField(max_length=500)
    format = models.CharField(max_length=10)  # png, jpeg, tiff
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField(default=1)
    dtype = models.CharField(max_length=20)
    # Something the annotator should know about how the file was read.
    note = models.CharField(max_length=500, blank=True, default="")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # A plane of a multi-page file: its stack and its time and depth index.
    stack = models.ForeignKey(
        ImageStack, null=True, blank=True, on_delete=models.CASCADE, related_name="planes"
    )
    t = models.PositiveIntegerField(default=0)
    z = models.PositiveIntegerField(default=0)
    # Gold: its curated set is the truth; annotators get it like any other
    # image and are scored against it (backend/quality). Never fused.
    gold = models.BooleanField(default=False)
    # Every object on the image is labelled: training may count its
    # unlabelled pixels as background (curated labels are otherwise partial).
    labels_complete = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "t", "z"], name="unique_stack_plane")
        ]

    def __str__(self) -> str:
        return self.name

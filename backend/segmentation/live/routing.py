from django.urls import path

from backend.segmentation.live.consumers import ImageConsumer

websocket_urlpatterns = [
    path("ws/images/<int:image_id>/", ImageConsumer.as_asgi()),
]

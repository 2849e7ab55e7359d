"""ASGI entry point: HTTP through Django, WebSockets through Channels, and the
lifespan (engines loaded ahead of clicks at startup)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from backend.accounts.ws_auth import TokenOrSessionAuthMiddleware  # noqa: E402
from backend.common.ws_origin import SameOriginValidator  # noqa: E402
from backend.segmentation.live.lifespan import lifespan  # noqa: E402
from backend.segmentation.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "lifespan": lifespan,
        "websocket": SameOriginValidator(
            TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)

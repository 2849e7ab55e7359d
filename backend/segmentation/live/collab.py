"""Working together on an image, over its WebSocket: the image's group
(backend/common/image_events.py) tells every connection of the others'
saved changes, each filtered by who may see what (audience.py), and who
else has the image open (presence).

Presence: a connection joining says hello to the group; everyone already
there answers the newcomer directly; a connection leaving says goodbye. A
person is identified to the others by name, each connection by a random
id (one person may have two tabs open)."""

from __future__ import annotations

import secrets
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from backend.common.image_events import image_group
from backend.segmentation.live import protocol
from backend.segmentation.live.audience import Audience


class Collaborating(AsyncJsonWebsocketConsumer):
    """The group side of ImageConsumer (which sets `audience` before `join`)."""

    audience: Audience
    group: str = ""
    presence_id: str = ""

    async def join(self, image_id: int) -> None:
        self.group = image_group(image_id)
        self.presence_id = secrets.token_hex(6)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def say_hello(self) -> None:
        await self.channel_layer.group_send(self.group, self._presence("presence.hello"))

    async def leave(self) -> None:
        if not self.group:
            return
        await self.channel_layer.group_send(self.group, self._presence("presence.bye"))
        await self.channel_layer.group_discard(self.group, self.channel_name)
        self.group = ""

    def _presence(self, kind: str) -> dict[str, Any]:
        return {"type": kind, "id": self.presence_id, "user": self.audience.username,
                "reply_to": self.channel_name}  # fmt: skip

    # --- group messages (Channels calls these by the message's type) --------

    async def image_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if self.audience.may_see(event):
            await self.send_json(protocol.change_message(event))

    async def presence_hello(self, message: dict[str, Any]) -> None:
        if message["id"] == self.presence_id:
            return
        await self.send_json(protocol.presence_message("join", message["id"], message["user"]))
        here = self._presence("presence.here")
        await self.channel_layer.send(message["reply_to"], here)

    async def presence_here(self, message: dict[str, Any]) -> None:
        await self.send_json(protocol.presence_message("join", message["id"], message["user"]))

    async def presence_bye(self, message: dict[str, Any]) -> None:
        if message["id"] != self.presence_id:
            await self.send_json(protocol.presence_message("leave", message["id"], message["user"]))

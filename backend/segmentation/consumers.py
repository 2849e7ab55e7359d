from channels.generic.websocket import AsyncJsonWebsocketConsumer


class ImageConsumer(AsyncJsonWebsocketConsumer):
    pass

"""The async side: drive core operations from asyncio, uvloop or trio."""

__all__: list[str] = []

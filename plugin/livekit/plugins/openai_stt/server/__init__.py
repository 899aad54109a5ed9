"""A local server speaking the OpenAI Realtime transcription protocol, offline.

``async with LocalRealtimeServer(engine="scripted") as server: ...`` then point a client at
``server.base_url``. Run from a shell with ``python -m livekit.plugins.openai_stt.server``.
"""

from .app import LocalRealtimeServer
from .engines import Engine, ScriptedEngine, SileroVad, WhisperEngine
from .scheduler import DecodeScheduler
from .session import Faults, Recognition, ServerSession

__all__ = [
    "DecodeScheduler",
    "Engine",
    "Faults",
    "LocalRealtimeServer",
    "Recognition",
    "ScriptedEngine",
    "ServerSession",
    "SileroVad",
    "WhisperEngine",
]

"""A local server speaking the OpenAI Realtime transcription protocol, offline.

``async with LocalRealtimeServer(engine="scripted") as server: ...`` then point a client at
``server.base_url``. Run from a shell with ``python -m livekit.plugins.openai_stt.server``.
``compat="vllm"`` (``--compat vllm``) speaks vLLM's own realtime dialect instead.

Without a socket (fast tests): ``LocalRealtimeServer(port=None)`` and
:meth:`LocalRealtimeServer.serve_channel` over the in-memory pair of :func:`memory_channel_pair`.
"""

from .app import LocalRealtimeServer
from .channel import ChannelClosed, HandshakeRejected, ServerChannel
from .engines import Engine, ScriptedEngine, SileroVad, WhisperEngine
from .faults import Faults
from .jobs import Recognition
from .memory import memory_channel_pair
from .scheduler import DecodeScheduler
from .session import ServerSession
from .vllm_session import VllmSession

__all__ = [
    "ChannelClosed",
    "DecodeScheduler",
    "Engine",
    "Faults",
    "HandshakeRejected",
    "LocalRealtimeServer",
    "Recognition",
    "ScriptedEngine",
    "ServerChannel",
    "ServerSession",
    "SileroVad",
    "VllmSession",
    "WhisperEngine",
    "memory_channel_pair",
]

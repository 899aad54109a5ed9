"""LiveKit Agents speech-to-text over the OpenAI Realtime transcription protocol.

```python
from livekit.plugins import openai_stt

stt = openai_stt.STT(model="gpt-realtime-whisper")
```

Works against OpenAI, Azure OpenAI, gateways and self-hosted servers; the local server in
``livekit.plugins.openai_stt.server`` speaks the same protocol offline.
"""

from livekit.agents import Plugin

from .log import logger
from .models import ModelInfo, STTModels, get_model_info, register_model
from .protocol.endpoint import build_realtime_stt_url
from .protocol.usage import UsageSummary
from .stream import SpeechStream
from .stt import STT, STTOptions
from .version import __version__

__all__ = [
    "STT",
    "STTOptions",
    "SpeechStream",
    "STTModels",
    "ModelInfo",
    "UsageSummary",
    "build_realtime_stt_url",
    "get_model_info",
    "register_model",
    "__version__",
]


class OpenAISTTPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(OpenAISTTPlugin())

# Cleanup docs of unexported modules
_module = dir()
NOT_IN_ALL = [m for m in _module if m not in __all__]

__pdoc__ = {}

for n in NOT_IN_ALL:
    __pdoc__[n] = False

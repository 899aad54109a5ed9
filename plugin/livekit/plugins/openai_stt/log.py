import logging

logger = logging.getLogger("livekit.plugins.openai_stt")
"""The plugin's logger. Messages are fixed strings; data goes in ``extra=``; never a key."""

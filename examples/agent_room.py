"""A LiveKit room agent that transcribes what people say with gpt-realtime-whisper.

    export LIVEKIT_URL=wss://<your-project>.livekit.cloud LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    export OPENAI_API_KEY=sk-...
    python examples/agent_room.py dev      # or: start (production), console (local mic)

The agent joins each room it is dispatched to, listens to the participant and, through the
session's room output, publishes the transcripts to the room (clients see them as the
``lk.transcription`` text stream); it also logs each final transcript. It never answers: no LLM
and no TTS are configured. To make it a voice assistant, give the session an ``llm=`` and a
``tts=`` (e.g. ``llm="openai/gpt-4.1-mini", tts="cartesia/sonic-3"`` through LiveKit Inference,
or any LLM/TTS plugin); the STT line stays as it is.

To try the local server instead of OpenAI (no key needed), run
``python -m livekit.plugins.openai_stt.server`` in another shell and set
``OPENAI_BASE_URL=http://127.0.0.1:<port>/v1`` and any ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import logging

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    UserInputTranscribedEvent,
    cli,
    inference,
)
from livekit.plugins import openai_stt

logger = logging.getLogger("agent_room")

server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """One job per room: a session with this plugin's STT and the silero VAD."""
    session = AgentSession(
        stt=openai_stt.STT(model="gpt-realtime-whisper"),  # OPENAI_API_KEY, OPENAI_BASE_URL
        vad=inference.VAD(model="silero"),
    )

    @session.on("user_input_transcribed")
    def _on_transcript(ev: UserInputTranscribedEvent) -> None:
        if ev.is_final:
            logger.info("user said", extra={"transcript": ev.transcript})

    await session.start(
        agent=Agent(instructions="You listen and transcribe; you do not answer."),
        room=ctx.room,
    )


if __name__ == "__main__":
    cli.run_app(server)

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AUDIO_DIR = PROJECT_ROOT.parent / "shared" / "audio"


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """The shared speech clips (``../shared/audio`` relative to the project root)."""
    if not AUDIO_DIR.is_dir():
        pytest.skip("../shared/audio is not beside the project")
    return AUDIO_DIR

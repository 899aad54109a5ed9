from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from benchmarks.clips import SHARED_AUDIO_MISSING, shared_audio_dir
from examples.evaluation import demo_clip as find_demo_clip

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# ``make test`` runs 4 workers on 2 cores: a property test's input generation can take seconds
# when the cores are busy, which says nothing about the code. Tests keep their own example counts.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")
EXAMPLES_DIR = PROJECT_ROOT / "examples"
# the example scripts import their sibling ``evaluation.py`` as a top-level module, as
# ``python examples/<script>.py`` lets them; tests that import a script need the same
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.append(str(EXAMPLES_DIR))


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """The team's further clips with ``transcripts.tsv`` (``../shared/audio``); tests that use
    them skip, naming the folder, where it is absent (a user's clone)."""
    folder = shared_audio_dir()
    if folder is None:
        pytest.skip(SHARED_AUDIO_MISSING)
    return folder


@pytest.fixture(scope="session")
def demo_clip() -> Path:
    """``two_cities.wav`` from the ``demo`` extra (installed by ``make test``): real speech
    that every setting has."""
    return find_demo_clip()

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # also declared in pyproject.toml; here too so that `pytest tests/peers` never warns
    config.addinivalue_line(
        "markers", "peers: real peers (openai SDK, livekit-plugins-openai, a LiteLLM proxy)"
    )

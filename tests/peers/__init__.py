"""Peers as tests (issue 12, point 1): software nobody here wrote, run against the local server
and the plugin.

- ``test_openai_sdk.py``: the ``openai`` SDK's realtime client drives the local server in each
  compat mode; every event it receives is validated strictly against the SDK's own models.
- ``test_official_plugin.py``: the official ``livekit-plugins-openai`` streams real speech
  through the local server; its finals are scored.
- ``test_litellm_proxy.py``: a real LiteLLM proxy (its CLI, ``litellm_config.yaml``) routes
  this plugin to the local server.

Every test is marked ``peers``. The first two peers are imported in-process (the ``peers``
extra); LiteLLM runs as a subprocess from its own virtual environment (its ``proxy`` extra pins
``websockets<16``, below what this project's venv has), found by :func:`support.litellm_bin`.
"""

"""Side-by-side benchmarks of this plugin and ``livekit-plugins-openai``.

Run from the project root: ``python -m benchmarks`` (``make bench``) writes BENCHMARKS.md;
``--quick`` is the smoke-sized run. Layout: ``clips`` (where the audio is), ``harness/`` (what
every scenario shares), ``scenarios/`` (one module per figure), ``report`` (the assembler).
"""

"""Side-by-side benchmarks of this plugin and ``livekit-plugins-openai``.

Run from the project root: ``python -m benchmarks.run`` (``make bench``) writes BENCHMARKS.md.
"""

"""One module per scenario. Each has a ``Config`` (its defaults are ``make bench``'s;
``Config.small()`` is the smoke-sized run: in one process, inline servers, numbers moot), a
``Result``, ``async measure(cfg) -> Result``, ``summary(result)`` (its rows of the summary
table, ours beside the official plugin) and ``render(result) -> str``: its Markdown section,
which starts with the method, the conditions of every figure."""

"""The harness every scenario shares (nothing here measures by itself).

- :mod:`.machine`: CPU pinning, machine facts, process and per-CPU times;
- :mod:`.stats`: percentiles and the number formats of the report;
- :mod:`.servers`: the local server and the probe server, in their own processes or inline;
- :mod:`.probe`: the probe server (the protocol, plus clocks and byte counts);
- :mod:`.plugins`: both plugins built the same way, the null STT, the oracle VAD;
- :mod:`.drive`: the pacer, the paced-push driver, one stream run, a fleet of streams;
- :mod:`.worker`: one measurement in a fresh process pinned to the client CPU.
"""

"""Exactly one final per turn, whatever the order of ``committed``, ``completed``, ``failed``,
drops and replays: table tests of the orders that went wrong, and a hypothesis state machine
over all of them. Pure ``ClientSession``, time as data."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from livekit.plugins.openai_stt.models import get_model_info
from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.client import (
    ClientConfig,
    ClientSession,
    SessionEndedOut,
)
from livekit.plugins.openai_stt.protocol.transcript import FailureOut, FinalOut

RATE = 24_000
FINAL_TIMEOUT_S = 5.0


def _session() -> ClientSession:
    s = ClientSession(
        ClientConfig(final_timeout_s=FINAL_TIMEOUT_S, max_item_s=1_000.0),
        get_model_info("gpt-realtime-whisper"),
    )
    s.connecting()
    s.opened(0.0, 0.0)
    s.data_to_send()
    return s


def _speech(ms: int) -> bytes:
    return b"\x10\x27" * (RATE * ms // 1000)  # a constant level: never a pause


def committed(item_id: str) -> ev.AudioBufferCommitted:
    return ev.AudioBufferCommitted(item_id=item_id)


def completed(item_id: str, text: str = "words") -> ev.TranscriptionCompleted:
    return ev.TranscriptionCompleted(item_id=item_id, transcript=text)


def failed(item_id: str) -> ev.TranscriptionFailed:
    return ev.TranscriptionFailed(item_id=item_id, error=ev.ErrorInfo(type="server_error"))


def ends(outputs: list[object]) -> list[object]:
    return [o for o in outputs if isinstance(o, (FinalOut, FailureOut))]


def test_completed_before_committed_gives_one_final_and_acknowledges_the_commit() -> None:
    s = _session()
    s.push_audio(_speech(200), 0.0)
    s.commit(0.0)
    early = s.receive(completed("item_1", "hello"), 0.1)
    late = s.receive(committed("item_1"), 0.2)
    assert [o.text for o in ends(early + late)] == ["hello"]  # type: ignore[attr-defined]
    assert s.finals_owed == 0
    assert not [o for o in s.tick(100.0) if isinstance(o, SessionEndedOut)]  # no hang
    s.data_to_send()
    s.connection_lost()
    s.connecting()
    s.opened(101.0, 101.0)
    assert not [m for m in s.data_to_send() if b"commit" in _bytes(m)]  # nothing replayed


def test_failed_before_committed_ends_its_turn_once() -> None:
    s = _session()
    s.push_audio(_speech(200), 0.0)
    s.commit(0.0)
    outs = s.receive(failed("item_1"), 0.1) + s.receive(committed("item_1"), 0.2)
    assert [type(o) for o in ends(outs)] == [FailureOut]
    assert s.finals_owed == 0


def test_a_completed_for_an_item_never_committed_gives_no_final() -> None:
    s = _session()
    assert ends(s.receive(completed("item_ghost", "not a turn of ours"), 0.0)) == []
    s.push_audio(_speech(200), 0.0)
    s.commit(0.0)
    outs = s.receive(committed("item_1"), 0.1) + s.receive(completed("item_1", "ours"), 0.2)
    assert [o.text for o in ends(outs)] == ["ours"]  # type: ignore[attr-defined]


def test_a_repeated_committed_takes_no_second_commit() -> None:
    s = _session()
    for _ in range(2):
        s.push_audio(_speech(200), 0.0)
        s.commit(0.0)
    s.receive(committed("item_1"), 0.1)
    s.receive(committed("item_1"), 0.1)  # a repeat must not acknowledge the second turn
    outs = s.receive(committed("item_2"), 0.2)
    assert [(o.audio_start_s, o.audio_end_s) for o in outs] == [(0.2, 0.4)]  # type: ignore[attr-defined]


def _bytes(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


class EventOrders(RuleBasedStateMachine):
    """A client stream against a server that answers its commits in any order, drops the
    socket at any time, and sends events for items that are not ours."""

    def __init__(self) -> None:
        super().__init__()
        self.s = _session()
        self.now = 0.0
        self.turns: list[float] = []  # end of each committed turn, stream seconds
        self.ends: Counter[float] = Counter()  # finals (or failures) per turn end
        self.socket = 1
        self.items: list[dict[str, object]] = []  # the current socket's items
        self.serial = 0

    # -- plumbing --------------------------------------------------------------------------

    def _sent(self) -> None:
        """The server side: each commit written becomes an item of this socket."""
        for message in self.s.data_to_send():
            if json.loads(message)["type"] == "input_audio_buffer.commit":
                self.serial += 1
                item = {"id": f"s{self.socket}_item_{self.serial}", "acked": False, "done": False}
                self.items.append(item)

    def _take(self, outputs: list[object]) -> None:
        for out in outputs:
            if isinstance(out, (FinalOut, FailureOut)):
                self.ends[round(out.audio_end_s, 3)] += 1
            if isinstance(out, SessionEndedOut):
                self._reconnect()
                return

    def _reconnect(self) -> None:
        self.s.connection_lost()
        self.socket += 1
        self.items = []
        self.s.connecting()
        self._take(self.s.opened(self.now, self.now))
        self._sent()

    # -- rules -----------------------------------------------------------------------------

    @rule(ms=st.integers(min_value=100, max_value=400))
    def a_turn(self, ms: int) -> None:
        self.s.push_audio(_speech(ms), self.now)
        assert self.s.commit(self.now)
        self.turns.append(round(self.s.ledger.appended / RATE, 3))
        self._sent()

    @precondition(lambda self: any(not i["acked"] for i in self.items))
    @rule(data=st.data())
    def the_server_acknowledges(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from([i for i in self.items if not i["acked"]]))
        item["acked"] = True
        self._take(self.s.receive(committed(str(item["id"])), self.now))

    @precondition(lambda self: any(not i["done"] for i in self.items))
    @rule(data=st.data(), fail=st.booleans())
    def the_server_finishes_an_item(self, data: st.DataObject, fail: bool) -> None:
        item = data.draw(st.sampled_from([i for i in self.items if not i["done"]]))
        item["done"] = True
        event = failed(str(item["id"])) if fail else completed(str(item["id"]))
        self._take(self.s.receive(event, self.now))

    @rule()
    def a_completed_for_an_item_not_ours(self) -> None:
        self._take(self.s.receive(completed(f"ghost_{self.serial}"), self.now))

    @rule()
    def the_socket_drops(self) -> None:
        self._reconnect()

    @rule(seconds=st.floats(min_value=0.01, max_value=2 * FINAL_TIMEOUT_S))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self._take(self.s.tick(self.now))

    # -- what must hold --------------------------------------------------------------------

    @invariant()
    def no_turn_has_two_finals(self) -> None:
        assert all(count == 1 for count in self.ends.values()), self.ends
        assert set(self.ends) <= set(self.turns), (self.ends, self.turns)

    def teardown(self) -> None:
        # the server answers everything still open; then every turn has its one final, and
        # nothing waits for ever: past the deadlines no final is owed
        for item in list(self.items):
            if not item["acked"]:
                self._take(self.s.receive(committed(str(item["id"])), self.now))
            if not item["done"]:
                self._take(self.s.receive(completed(str(item["id"])), self.now))
        for _ in range(3):
            self.now += 2 * FINAL_TIMEOUT_S
            self._take(self.s.tick(self.now))
            for item in list(self.items):  # a replay after a deadline: answer it too
                if not item["acked"]:
                    item["acked"] = True
                    self._take(self.s.receive(committed(str(item["id"])), self.now))
                if not item["done"]:
                    item["done"] = True
                    self._take(self.s.receive(completed(str(item["id"])), self.now))
        assert self.s.finals_owed == 0
        assert sorted(self.ends) == sorted(set(self.turns)), (self.ends, self.turns)
        assert all(count == 1 for count in self.ends.values()), self.ends


EventOrders.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestEventOrders = EventOrders.TestCase

"""Usage accounting: audio seconds sent and committed, tokens, and estimated cost.

Pure. Billing follows the model (docs/protocol.md §2): duration-billed models cost their price per
minute of *billed* audio (the server's ``duration`` usage when it sends one, else the seconds
the client committed); token-billed models cost their token prices.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ModelInfo, estimate_cost_usd
from .transcript import UsageOut

__all__ = ["UsageSummary"]


@dataclass
class UsageSummary:
    """Running totals for a stream or an STT (all streams).

    Attributes:
        audio_seconds_sent: audio appended to the socket, seconds (replays count again).
        audio_seconds_committed: audio in completed items, seconds (client count).
        billed_seconds: duration usage as billed: the server's figure where given, else the
            client's committed seconds for that item.
        input_tokens, output_tokens, audio_input_tokens, text_input_tokens: token usage.
        items: completed items counted.
        model: the registry entry used for items added without one of their own.
        cost_usd: estimated cost in USD, summed per item with the model in force for that
            item; ``None`` when some item's model has no known price.
    """

    model: ModelInfo
    cost_usd: float | None = 0.0
    audio_seconds_sent: float = 0.0
    audio_seconds_committed: float = 0.0
    billed_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    audio_input_tokens: int = 0
    text_input_tokens: int = 0
    items: int = 0

    def add_item(self, usage: UsageOut, model: ModelInfo | None = None) -> None:
        """Count one completed item, priced with ``model`` (default: :attr:`model`)."""
        billed = usage.billed_seconds if usage.billed_seconds is not None else usage.audio_seconds
        item_cost = estimate_cost_usd(
            model or self.model,
            audio_seconds=billed,
            audio_input_tokens=usage.audio_input_tokens,
            text_input_tokens=usage.text_input_tokens,
            output_tokens=usage.output_tokens,
        )
        self.cost_usd = (
            None if item_cost is None or self.cost_usd is None else self.cost_usd + item_cost
        )
        self.items += 1
        self.audio_seconds_committed += usage.audio_seconds
        self.billed_seconds += billed
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.audio_input_tokens += usage.audio_input_tokens
        self.text_input_tokens += usage.text_input_tokens

    def merge(self, other: UsageSummary) -> None:
        """Add another summary's totals into this one (same model)."""
        self.audio_seconds_sent += other.audio_seconds_sent
        self.audio_seconds_committed += other.audio_seconds_committed
        self.billed_seconds += other.billed_seconds
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.audio_input_tokens += other.audio_input_tokens
        self.text_input_tokens += other.text_input_tokens
        self.items += other.items
        if self.cost_usd is None or other.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += other.cost_usd

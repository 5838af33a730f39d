"""What every decoder returns: the events it could read and, per bad item, an error naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from costline.core.events import ObservationEvent, ScoreEvent, TraceEvent
from costline.errors import CostlineError


class IngestError(CostlineError):
    """A whole request body that cannot be read (bad JSON or protobuf, wrong top-level shape): HTTP 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ItemError:
    """One rejected item of a batch: its id (or position) and why, naming the field."""

    id: str
    message: str
    status: int = 400


@dataclass
class Decoded:
    """Events decoded from one request, in arrival order, plus the ids accepted and the items rejected."""

    observations: list[ObservationEvent] = field(default_factory=list)
    traces: list[TraceEvent] = field(default_factory=list)
    scores: list[ScoreEvent] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    #: False when every observation event is a complete create (OTLP spans, native events): the pipeline
    #: then replaces stored rows without reading them first. True for protocols with partial updates.
    merge: bool = True

    def extend(self, other: Decoded) -> None:
        self.observations.extend(other.observations)
        self.traces.extend(other.traces)
        self.scores.extend(other.scores)
        self.accepted.extend(other.accepted)
        self.errors.extend(other.errors)

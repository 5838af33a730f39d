"""costline's in-app tracker: price every model call locally the moment it returns, ship it in the background.

``configure(host=..., public_key=..., secret_key=...)`` (or the ``COSTLINE_*`` environment variables) sets the
process-wide tracker; ``@observe()`` and ``tracker.trace/span/generation`` record what the app does;
``tracker.record_generation(model=..., usage=...)`` returns the call's ``CostBreakdown`` at once. The tracker
never raises into the application. See docs/sdk.md.
"""

from costline.sdk.config import TrackerConfig
from costline.sdk.context import ObservationHandle, TraceHandle, current_observation, current_trace
from costline.sdk.observe import observe
from costline.sdk.tracker import Tracker, configure, get_tracker

__all__ = [
    "ObservationHandle",
    "TraceHandle",
    "Tracker",
    "TrackerConfig",
    "configure",
    "current_observation",
    "current_trace",
    "get_tracker",
    "observe",
]

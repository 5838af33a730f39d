"""LiteLLM: a callback that records every ``litellm.completion`` / ``acompletion`` / ``embedding`` call as a
generation priced by costline (``pip install 'costline[litellm]'``).

    import litellm
    from costline.sdk.integrations.litellm import CostlineLogger
    litellm.callbacks = [CostlineLogger()]

LiteLLM hands its callbacks the response in OpenAI's shape whatever the provider, so the usage is read with
costline's OpenAI extractor (cached and reasoning tokens included) and priced from costline's catalog as of
the call's start, not with LiteLLM's float ``response_cost`` (kept in the metadata for comparison). A failed
call is recorded with level ERROR. The callback never raises into LiteLLM.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from costline.sdk.integrations._record import dump
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")


def _aware(value: object) -> datetime | None:
    """LiteLLM passes naive local times (``datetime.now()``)."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo is None else value


class CostlineLogger(CustomLogger):
    """Records LiteLLM calls with ``tracker`` (default: ``get_tracker()`` at each call)."""

    def __init__(self, tracker: Tracker | None = None) -> None:
        super().__init__()
        self.tracker = tracker

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            payload = dump(response_obj)
            metadata: dict[str, Any] = {}
            litellm_cost = kwargs.get("response_cost")
            if isinstance(litellm_cost, int | float):
                metadata["litellm_response_cost"] = repr(float(litellm_cost))
            (self.tracker or get_tracker()).record_generation(
                model=str((payload or {}).get("model") or kwargs.get("model")),
                provider=kwargs.get("custom_llm_provider"), raw_usage=payload, usage_format="openai",
                name=f"litellm.{kwargs.get('call_type') or 'completion'}", start_time=_aware(start_time),
                end_time=_aware(end_time), metadata=metadata or None,
            )
        except Exception:
            log.exception("costline: could not record a LiteLLM call")

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            handle = (self.tracker or get_tracker()).generation(
                name=f"litellm.{kwargs.get('call_type') or 'completion'}", model=kwargs.get("model"),
                provider=kwargs.get("custom_llm_provider"))
            error = kwargs.get("exception")
            if isinstance(error, BaseException):
                handle.record_error(error)
            else:
                handle.update(level="ERROR", status_message=str(error or "LiteLLM call failed"))
            handle.end(_aware(end_time))
        except Exception:
            log.exception("costline: could not record a failed LiteLLM call")

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self.log_failure_event(kwargs, response_obj, start_time, end_time)


__all__ = ["CostlineLogger"]

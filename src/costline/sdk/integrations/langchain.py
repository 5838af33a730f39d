"""LangChain: a callback handler that records every chat-model / LLM run as a priced generation
(``pip install 'costline[langchain]'``).

    from costline.sdk.integrations.langchain import CostlineCallbackHandler
    chain.invoke(inputs, config={"callbacks": [CostlineCallbackHandler()],
                                 "metadata": {"user_id": "alice", "session_id": "s1"}})

A run starts a generation under the current costline trace/span (or its own trace); its usage is read from
the answer message (``usage_metadata``, LangChain's inclusive counts, else the vendor's ``response_metadata``)
by costline's LangChain extractor; the model from ``response_metadata`` (``model_name``/``model``) or the
invocation parameters. ``user_id``/``session_id`` (also Langfuse's ``langfuse_user_id``,
``langfuse_session_id``, ``langfuse_tags``) in the run's metadata and the run's tags go to the trace. A failed
run is recorded with level ERROR. The handler never raises into the chain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from costline.sdk.context import ObservationHandle
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")

_USER_KEYS = ("user_id", "langfuse_user_id")
_SESSION_KEYS = ("session_id", "langfuse_session_id")


class CostlineCallbackHandler(BaseCallbackHandler):
    """Records LangChain model runs with ``tracker`` (default: ``get_tracker()`` when a run starts)."""

    raise_error = False

    def __init__(self, tracker: Tracker | None = None) -> None:
        self.tracker = tracker
        self._runs: dict[UUID, ObservationHandle] = {}
        self._lock = threading.Lock()

    # starts -------------------------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(serialized, run_id, tags, metadata, kwargs)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(serialized, run_id, tags, metadata, kwargs)

    def _start(self, serialized: Mapping[str, Any] | None, run_id: UUID, tags: Sequence[str] | None,
               metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> None:
        try:
            params = kwargs.get("invocation_params") or {}
            model = params.get("model") or params.get("model_name")
            meta = dict(metadata or {})
            name = (serialized or {}).get("name") or kwargs.get("name") or "langchain"
            handle = (self.tracker or get_tracker()).generation(
                name=str(name), model=str(model) if model else None, provider=_provider(meta, params),
                metadata={k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)} or None,
            )
            user = next((meta[k] for k in _USER_KEYS if isinstance(meta.get(k), str)), None)
            session = next((meta[k] for k in _SESSION_KEYS if isinstance(meta.get(k), str)), None)
            all_tags = [*(tags or ()), *[t for t in meta.get("langfuse_tags") or () if isinstance(t, str)]]
            if user or session or all_tags:
                handle.trace.update(user_id=user, session_id=session, tags=all_tags or None)
            with self._lock:
                self._runs[run_id] = handle
        except Exception:
            log.exception("costline: could not start recording a LangChain run")

    # ends ---------------------------------------------------------------------------------------------
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None,
                   **kwargs: Any) -> None:
        handle = self._pop(run_id)
        if handle is None:
            return
        try:
            message = _first_message(response)
            if message is not None:
                meta = message.get("response_metadata") or {}
                model = meta.get("model_name") or meta.get("model")
                if isinstance(model, str) and model:
                    handle.update(model=model)
                if message.get("usage_metadata") is not None or meta:
                    handle.update(raw_usage=message, usage_format="langchain")
            elif response.llm_output and response.llm_output.get("token_usage"):
                handle.update(raw_usage={"response_metadata": {"token_usage": response.llm_output["token_usage"]}},
                              usage_format="langchain")
        except Exception:
            log.exception("costline: could not read a LangChain result")
        finally:
            handle.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        handle = self._pop(run_id)
        if handle is not None:
            handle.record_error(error)
            handle.end()

    def _pop(self, run_id: UUID) -> ObservationHandle | None:
        with self._lock:
            return self._runs.pop(run_id, None)


def _first_message(response: LLMResult) -> dict[str, Any] | None:
    for candidates in response.generations:
        for generation in candidates:
            message = getattr(generation, "message", None)
            if message is not None:
                dumped: dict[str, Any] = message.model_dump(warnings=False)
                return dumped
    return None


def _provider(meta: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    value = meta.get("ls_provider") or params.get("_type")
    if not isinstance(value, str):
        return None
    for known in ("openai", "anthropic", "google", "mistral", "cohere", "bedrock", "groq"):
        if known in value:
            return known
    return None


__all__ = ["CostlineCallbackHandler"]

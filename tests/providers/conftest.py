"""Fixtures for the fake provider servers: one server per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.providers.anthropic_server import DEFAULT_USAGE as ANTHROPIC_DEFAULT
from tests.providers.anthropic_server import AnthropicFake
from tests.providers.openai_server import DEFAULT_USAGE as OPENAI_DEFAULT
from tests.providers.openai_server import OpenAIFake


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIFake]:
    with OpenAIFake().running() as fake:
        yield fake


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[AnthropicFake]:
    with AnthropicFake().running() as fake:
        yield fake


@pytest.fixture
def openai_fake(openai_server: OpenAIFake) -> OpenAIFake:
    openai_server.reset()
    openai_server.usage = dict(OPENAI_DEFAULT)
    return openai_server


@pytest.fixture
def anthropic_fake(anthropic_server: AnthropicFake) -> AnthropicFake:
    anthropic_server.reset()
    anthropic_server.usage = dict(ANTHROPIC_DEFAULT)
    anthropic_server.delta_repeats_input = True
    return anthropic_server

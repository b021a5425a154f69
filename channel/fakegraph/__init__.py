"""The project's stand-in for Meta's WhatsApp Cloud API (tests, benchmarks, the dev run)."""

from channel.fakegraph.server import FakeConfig, FakeGraphServer
from channel.fakegraph.validation import Rejection, Template, validate_message

__all__ = ["FakeConfig", "FakeGraphServer", "Rejection", "Template", "validate_message"]

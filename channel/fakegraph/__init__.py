"""The project's stand-in for Meta's WhatsApp Cloud API (tests, benchmarks, the dev run)."""

"""Policies: pure functions from importance and shots (numpy + pydantic) to encoder decisions."""

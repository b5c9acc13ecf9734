"""Beam arguments for remote runners (Dataflow): worker dependencies and defaults users get wrong."""

from __future__ import annotations

__all__ = ["complete_remote_args"]


def complete_remote_args(beam_args: list[str]) -> list[str]:
    """Returns the Beam args a remote runner needs beyond what the user gave (local runners: unchanged)."""
    return list(beam_args)

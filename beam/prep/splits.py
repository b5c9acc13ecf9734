"""Deterministic split assignment: a salted SHA-256 of the blob name, the same on every run and machine."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["SplitSpec", "parse_splits"]

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class SplitSpec:
    """Named fractions summing to 1, and the salt that makes assignments independent of other uses of the hash."""

    fractions: tuple[tuple[str, float], ...]
    salt: str = "audioflow-split-v1"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fractions)

    def assign(self, blob: str) -> str:
        """Returns the split of a blob name: the same answer for the same name, always."""
        digest = hashlib.sha256(f"{self.salt}\x00{blob}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        cumulative = 0.0
        for name, fraction in self.fractions:
            cumulative += fraction
            if position < cumulative:
                return name
        return self.fractions[-1][0]


def parse_splits(text: str) -> SplitSpec:
    """Parses 'train=0.8,validation=0.1,test=0.1' (fractions must be positive and sum to 1).

    Raises:
        ValueError: naming what is wrong with the text.
    """
    fractions: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise ValueError(f"bad split {part!r}: expected name=fraction with a name of letters, digits or _")
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"bad fraction in split {part!r}") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"split {name!r} has fraction {fraction}; it must be in (0, 1]")
        if name in dict(fractions):
            raise ValueError(f"split {name!r} is given twice")
        fractions.append((name, fraction))
    if not fractions:
        raise ValueError("no splits given")
    total = sum(f for _, f in fractions)
    if abs(total - 1) > 1e-6:
        raise ValueError(f"split fractions sum to {total:g}, not 1")
    return SplitSpec(tuple(fractions))

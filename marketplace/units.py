"""WEBI amounts for people: wei (integers, on-chain) to and from decimal WEBI strings."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marketplace.errors import ConfigError

DECIMALS = 18


def webi(amount: str | int | None, places: int = 4) -> str:
    """Wei as WEBI, rounded to ``places``: ``12.5``, ``0.0001``, ``—`` for None."""
    if amount is None:
        return "—"
    value = Decimal(int(amount)) / Decimal(10**DECIMALS)
    text = f"{value:,.{places}f}".rstrip("0").rstrip(".")
    return text or "0"


def to_wei(amount: str) -> int:
    """``"12.5"`` WEBI as wei; refuses negatives and more than 18 decimals."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ConfigError(f"{amount!r} is not an amount of WEBI") from None
    wei = value * 10**DECIMALS
    if value <= 0 or wei != wei.to_integral_value():
        raise ConfigError(f"{amount!r}: give a positive amount of WEBI with at most {DECIMALS} decimals")
    return int(wei)

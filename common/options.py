"""Command-line option types shared by chatctl's commands."""

from __future__ import annotations

import click

from chatcluster.common.config import auto_shards


class ShardCount(click.ParamType):
    """A number of shards, or `auto` (common.config.auto_shards)."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if str(value).strip().lower() == "auto":
            return auto_shards()
        try:
            count = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
        if not 1 <= count <= 256:
            self.fail(f"{count} is not between 1 and 256", param, ctx)
        return count


SHARDS = ShardCount()


class Duration(click.ParamType):
    """A length of time: seconds, or a number with s, m, h or d (90, 90s, 10m, 1h, 7d)."""

    name = "DURATION"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = self.UNITS.get(text[-1:], None)
        number = text[:-1] if unit is not None else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration like 90s, 10m, 1h or 7d", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} is not a positive duration", param, ctx)
        return seconds


DURATION = Duration()

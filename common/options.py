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

"""``agentcg capacity``: placeholder while it is being written."""

import click


@click.command()
def capacity() -> None:
    """Not yet."""

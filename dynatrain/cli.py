"""Command-line interface (placeholder until the commands land)."""

import click


@click.group()
def main() -> None:
    """Measure neural-network training as a dynamical system."""

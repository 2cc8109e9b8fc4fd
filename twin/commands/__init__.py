"""Sub-commands of ``twin`` that live outside ``twin.cli``; each module exposes
``register(app: typer.Typer) -> None`` and ``twin.cli`` calls it."""

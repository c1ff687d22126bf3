"""The ``tessera`` command line: thin Typer commands over the admin API (the only Typer code)."""

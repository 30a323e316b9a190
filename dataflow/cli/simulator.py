"""``dataflow simulator``: serve the Twelve Data-compatible simulator until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from dataflow.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    """Add the ``simulator`` command to the CLI."""

    @app.command("simulator")
    @handle_errors
    def simulator(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
        api_key: Annotated[
            str | None,
            typer.Option(
                "--api-key",
                envvar="DATAFLOW_SIMULATOR_API_KEY",
                help="Require this key (default: accept any or none).",
                show_default=False,
            ),
        ] = None,
        credits_per_minute: Annotated[
            int | None, typer.Option(help="Credits per minute window (default: unlimited).")
        ] = None,
        daily_credits: Annotated[
            int | None, typer.Option(help="Credits per UTC day (default: unlimited).")
        ] = None,
        minute_seconds: Annotated[
            float, typer.Option(help="Length of the credit window in seconds.")
        ] = 60.0,
        error_rate: Annotated[
            float, typer.Option(help="Fraction of requests answered with an injected fault.")
        ] = 0.0,
        latency_ms: Annotated[float, typer.Option(help="Latency added to every response.")] = 0.0,
        legacy_errors: Annotated[
            bool, typer.Option(help="Answer errors with HTTP 200 and the error body.")
        ] = False,
        seed: Annotated[int, typer.Option(help="Seed of the market data and faults.")] = 42,
    ) -> None:
        """Serve the Twelve Data-compatible simulator (the embedded default data source)."""
        from dataflow.errors import ConfigError

        if not 0.0 <= error_rate <= 1.0:
            raise ConfigError(f"--error-rate must be between 0 and 1, got {error_rate}")
        if minute_seconds <= 0:
            raise ConfigError(f"--minute-seconds must be positive, got {minute_seconds}")

        from dataflow.sources.twelvedata.simulator import SimulatorConfig, serve

        config = SimulatorConfig(
            api_key=api_key,
            credits_per_minute=credits_per_minute,
            daily_credits=daily_credits,
            minute_seconds=minute_seconds,
            error_rate=error_rate,
            latency_ms=latency_ms,
            legacy_errors=legacy_errors,
            seed=seed,
        )

        def ready(url: str) -> None:
            auth = "key required" if api_key else "no key required"
            typer.echo(f"Twelve Data simulator listening on {url} ({auth}); Ctrl-C to stop")

        try:
            serve(config, host, port, on_ready=ready)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

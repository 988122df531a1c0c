"""``pyschedvisu pacs check``: can we talk to the configured PACS, and how can timing be read?

When the PACS keeps us out, it says which way (:mod:`pyschedvisu_core.diagnosis`): no
association at all, association rejected (and why), or accepted then dropped at the first
request; each with the one line to ask the PACS team.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Annotated

import typer

from pyschedvisu.commands._common import settings_from
from pyschedvisu_core.errors import PacsError


def check(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="Day (YYYY-MM-DD) whose studies are used to test retrieval (default: the last 30 days).",
        ),
    ] = None,
) -> None:
    """C-ECHO the PACS, then test IMAGE-level timing attributes, C-GET and C-MOVE; exit 1 if unusable."""
    from pyschedvisu.retrieval import (
        check_day_wide,
        diagnose,
        find_sample,
        make_client,
        record_for,
    )

    settings = settings_from(ctx)
    p = settings.pacs
    label = f"{p.called_ae}@{p.host}:{p.port} (we are {p.calling_ae})"
    if day:
        try:
            start = end = dt.date.fromisoformat(day)
        except ValueError:
            raise typer.BadParameter(f"{day!r} is not a date YYYY-MM-DD") from None
    else:
        end = dt.date.today()
        start = end - dt.timedelta(days=30)
    client = make_client(settings)
    try:
        t0 = time.monotonic()

        def unusable(exc: PacsError, request: str) -> typer.Exit:
            told = diagnose(settings, exc, client.counters, request)
            if told is None:
                typer.echo(f"PACS {label}: {request} failed: {exc}", err=True)
            else:
                typer.echo(f"PACS {label}: NOT usable: {told.summary} ({exc})", err=True)
                typer.echo(f"hint: {told.hint}", err=True)
            return typer.Exit(code=1)

        try:
            client.echo()
        except PacsError as exc:
            raise unusable(exc, "C-ECHO") from None
        typer.echo(f"C-ECHO {label}: ok ({(time.monotonic() - t0) * 1000:.0f} ms)")
        deflated = client.answers_deflated
        if not p.deflate_answers:
            typer.echo("C-FIND answers deflated: not asked (pacs.deflate_answers = false)")
        elif deflated is not None:
            typer.echo(f"C-FIND answers deflated: {'yes' if deflated else 'no (not accepted)'}")
        try:
            found = find_sample(client, start, end, settings.retrieve.study_modalities)
        except PacsError as exc:
            raise unusable(exc, "C-FIND") from None
        if found is None:
            typer.echo(
                f"no PT/NM study between {start} and {end}: retrieval methods not tested (use --day)"
            )
            return
        study_uid, series_uid, sample_day = found
        caps = client.probe((study_uid, series_uid), thorough=True)
        yes = {True: "yes", False: "no", None: "not tested"}
        typer.echo(f"IMAGE-level C-FIND returns timing attributes: {yes[caps.image_find_timing]}")
        typer.echo(f"C-GET of instances: {yes[caps.c_get]}")
        typer.echo(f"C-MOVE to {p.move_ae or p.calling_ae}, port {p.move_port}: {yes[caps.c_move]}")
        for note in caps.notes:
            typer.echo(f"  - {note}")
        relational, why = check_day_wide(settings, client, sample_day)
        typer.echo(f"day-wide (relational) C-FIND on {sample_day}: {yes[relational]} ({why})")
        methods = caps.methods()
        if not methods:
            typer.echo(
                "no way to read instance timing from this PACS: check move_ae / move_port registration",
                err=True,
            )
            raise typer.Exit(code=1)
        record = record_for(settings)
        record.remember(dataclasses.replace(caps, relational=relational))
        chosen = methods[0] if p.retrieval == "auto" else p.retrieval
        typer.echo(f"retrieval = {p.retrieval!r}: uses {chosen} (remembered for {record.key})")
    except PacsError as exc:
        typer.echo(f"PACS {label}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        client.close()

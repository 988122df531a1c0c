"""``pyschedvisu synth``: generate the synthetic department (DICOM files + ground truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import parse_day, settings_from


def synth(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (dicom/, truth/, synth.json).")
    ],
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last day, YYYY-MM-DD (included).")],
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed and days, same files.")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Regenerate days that are already complete.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker processes (default: one per CPU)."),
    ] = None,
    department: Annotated[
        str,
        typer.Option(
            "--department",
            help="Whose names the files carry: 'reference' (what the default config describes) "
            "or 'seeland' (another hospital: other institution, scanner models, descriptions, "
            "two identical SPECT/CT; try `pyschedvisu discover` on it).",
        ),
    ] = "reference",
) -> None:
    """Generate a synthetic nuclear-medicine department with its ground truth."""
    from pyschedvisu.synth import DEPARTMENTS, generate

    first, last = parse_day(start), parse_day(end)
    if last < first:
        raise typer.BadParameter("--end is before --start")
    if department not in DEPARTMENTS:
        raise typer.BadParameter(f"{department!r}: one of {sorted(DEPARTMENTS)}")
    settings = settings_from(ctx)
    summary = generate(
        out,
        first,
        last,
        seed,
        settings,
        force=force,
        workers=workers,
        department=DEPARTMENTS[department],
    )
    typer.echo(
        f"{out}: {summary.days} business days ({summary.generated_days} generated, "
        f"{summary.days - summary.generated_days} already there) in {summary.seconds:.1f} s: "
        f"{summary.studies} studies, {summary.series} series, {summary.instances} instances, "
        f"{summary.excluded} excluded and {summary.failed} failed series; "
        f"{summary.truth_studies} studies in the truth"
    )


def register(app: typer.Typer) -> None:
    """Add ``synth`` to the CLI."""
    app.command("synth")(synth)

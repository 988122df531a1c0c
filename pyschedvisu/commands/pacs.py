"""``pyschedvisu pacs serve`` (the demo PACS) and ``pyschedvisu pacs check`` (the configured PACS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from pyschedvisu.commands import pacs_check
from pyschedvisu.commands._common import settings_from, stop_processes
from pyschedvisu_core.errors import PacsError, StoreError

pacs_app = typer.Typer(
    help="The demo PACS, and checks of the configured PACS.", no_args_is_help=True
)


def parse_move_dest(value: str) -> tuple[str, tuple[str, int]]:
    """``AE=HOST:PORT`` -> ``("AE", ("HOST", PORT))``; raises typer.BadParameter."""
    ae, sep, addr = value.partition("=")
    host, sep2, port = addr.rpartition(":")
    if not (sep and sep2 and ae.strip() and host.strip() and port.isdigit()):
        raise typer.BadParameter(
            f"{value!r}: expected AE=HOST:PORT, e.g. PYSCHEDVISU=127.0.0.1:11113"
        )
    if len(ae.strip()) > 16 or not 0 < int(port) < 65536:
        raise typer.BadParameter(
            f"{value!r}: AE title of 1-16 characters and a port 1-65535 expected"
        )
    return ae.strip(), (host.strip(), int(port))


@pacs_app.command("serve")
def serve(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Data dir whose dicom/** is served (e.g. `pyschedvisu synth --out`)."
        ),
    ],
    port: Annotated[
        int | None,
        typer.Option("--port", help="DICOM port (default: pacs.port).", min=0, max=65535),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    ae: Annotated[
        str | None,
        typer.Option("--ae", help="AE title of the demo PACS (default: pacs.called_ae)."),
    ] = None,
    hospital: Annotated[
        bool,
        typer.Option(
            "--hospital",
            help="Act like the 2019 hospital PACS: no C-GET, minimal IMAGE level, throttled.",
        ),
    ] = False,
    refuse_get: Annotated[
        bool, typer.Option("--refuse-get", help="Do not support C-GET (contexts rejected).")
    ] = False,
    minimal_image_level: Annotated[
        bool,
        typer.Option(
            "--minimal-image-level", help="IMAGE-level C-FIND returns only UIDs and InstanceNumber."
        ),
    ] = False,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight", min=1, help="Answer 0xC336 beyond K concurrent operations."
        ),
    ] = None,
    max_ops_per_s: Annotated[
        float | None,
        typer.Option(
            "--max-ops-per-s", min=0.01, help="Answer 0xC336 beyond R operations per second."
        ),
    ] = None,
    move_dest: Annotated[
        list[str] | None,
        typer.Option(
            "--move-dest",
            help="C-MOVE destination AE=HOST:PORT (repeatable). Default: pacs.calling_ae at 127.0.0.1:pacs.move_port.",
        ),
    ] = None,
    allow_ae: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-ae", help="Only accept associations from these calling AE titles (repeatable)."
        ),
    ] = None,
    forget_performed: Annotated[
        bool,
        typer.Option(
            "--forget-performed",
            help="The Modality Worklist drops a step once it is performed, as most RIS do.",
        ),
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            max=16,
            help="Processes serving the port, each with its own copy of the index: a new association goes to one serving none (one Python process answers one request at a time).",
        ),
    ] = 1,
    listen_fd: Annotated[
        int | None, typer.Option("--listen-fd", hidden=True, help="A listening socket (internal).")
    ] = None,
) -> None:
    """Serve DIR/dicom/** over DICOM (C-ECHO, C-FIND, C-GET, C-MOVE) until Ctrl-C."""
    from pyschedvisu.demo_pacs import Behaviour, DemoPacs

    settings = settings_from(ctx)
    shared: socket.socket | None = None
    if listen_fd is not None:  # one of the processes of `--processes`
        shared = socket.socket(fileno=listen_fd)
    elif processes > 1:
        wanted = settings.pacs.port if port is None else port
        try:
            shared = socket.create_server((host, wanted), backlog=64)
        except OSError as exc:
            typer.echo(f"pacs serve: cannot listen on {host}:{wanted}: {exc}", err=True)
            raise typer.Exit(code=1) from None
    dests: dict[str, tuple[str, int]] = {}
    if move_dest:
        dests = dict(parse_move_dest(v) for v in move_dest)
    else:
        dest_ae = settings.pacs.move_ae or settings.pacs.calling_ae
        if settings.pacs.move_port:
            dests[dest_ae] = ("127.0.0.1", settings.pacs.move_port)
    if hospital:
        behaviour = Behaviour.hospital()
        if max_in_flight is not None:
            behaviour.max_in_flight = max_in_flight
        if max_ops_per_s is not None:
            behaviour.max_ops_per_s = max_ops_per_s
    else:
        behaviour = Behaviour(
            refuse_get=refuse_get,
            image_level_minimal=minimal_image_level,
            max_in_flight=max_in_flight,
            max_ops_per_s=max_ops_per_s,
        )
    behaviour.refuse_get |= refuse_get
    behaviour.image_level_minimal |= minimal_image_level
    if allow_ae:
        behaviour.allowed_calling_aes = {a.strip() for a in allow_ae}
    behaviour.forget_performed = forget_performed
    others: list[subprocess.Popen[bytes]] = []
    if shared is not None and listen_fd is None:
        fd = shared.fileno()
        # the same options, the socket instead of the port; their output goes with ours
        argv = [sys.executable, "-m", "pyschedvisu.cli"]
        config = (ctx.find_root().obj or {}).get("config")
        argv += ["--config", str(config)] if config else []
        argv += ["pacs", "serve", "--data", str(data), "--host", host, "--listen-fd", str(fd)]
        argv += ["--ae", ae or settings.pacs.called_ae]
        argv += ["--hospital"] if hospital else []
        argv += ["--refuse-get"] if refuse_get else []
        argv += ["--minimal-image-level"] if minimal_image_level else []
        argv += ["--forget-performed"] if forget_performed else []
        argv += ["--max-in-flight", str(max_in_flight)] if max_in_flight else []
        argv += ["--max-ops-per-s", str(max_ops_per_s)] if max_ops_per_s else []
        for value in move_dest or []:
            argv += ["--move-dest", value]
        for value in allow_ae or []:
            argv += ["--allow-ae", value]
        others = [subprocess.Popen(argv, pass_fds=(fd,)) for _ in range(processes - 1)]
    parent = os.getppid()
    try:
        pacs = DemoPacs(
            data,
            ae_title=ae or settings.pacs.called_ae,
            host=host,
            port=settings.pacs.port if port is None else port,
            behaviour=behaviour,
            move_destinations=dests,
            listen_socket=shared,
        )
        bound = pacs.start()
    except (PacsError, StoreError) as exc:
        stop_processes(others)
        typer.echo(f"pacs serve: {exc}", err=True)
        raise typer.Exit(code=1) from None
    stop = threading.Event()
    # Both signals just stop the loop (SIGINT may be ignored when started in the background).
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    moves = ", ".join(f"{k}={h}:{p}" for k, (h, p) in dests.items()) or "none"
    typer.echo(
        f"demo PACS {pacs.ae_title} on {host}:{bound}: {len(pacs.index)} instances; "
        f"C-GET {'refused' if behaviour.refuse_get else 'allowed'}; "
        f"IMAGE level {'minimal' if behaviour.image_level_minimal else 'full'}; "
        f"max in flight {behaviour.max_in_flight or '-'}; max ops/s {behaviour.max_ops_per_s or '-'}; "
        f"C-MOVE destinations: {moves}; "
        f"worklist: {_worklist_line(pacs.worklist, forget_performed)}. Ctrl-C to stop."
    )
    try:
        while not stop.wait(0.5):
            if listen_fd is not None and os.getppid() != parent:
                break  # the process that started us is gone
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_processes(others)
        pacs.stop()
        s = pacs.stats
        typer.echo(
            f"stopped: {s.associations} associations, {s.find} C-FIND, {s.get} C-GET, {s.move} C-MOVE, {s.throttled} throttled"
        )


def _worklist_line(worklist: Any, forget_performed: bool) -> str:
    if worklist is None:
        return "none (no truth/book.parquet)"
    forget = ", performed steps dropped" if forget_performed else ""
    return f"{worklist.book.height} appointment(s){forget}"


pacs_app.command("check")(pacs_check.check)


def register(app: typer.Typer) -> None:
    app.add_typer(pacs_app, name="pacs")

"""Why a PACS keeps us out, told by ``pacs check`` and ``retrieve`` with the line to ask its team.

No association at all (refused, timed out), association rejected (called AE / calling AE not
recognised, from the A-ASSOCIATE-RJ fields), accepted then dropped at the first request (a
calling AE title Orthanc does not know): against the demo PACS and a real Orthanc 1.10.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.demo_pacs import Behaviour
from pyschedvisu.retrieval import forget_capabilities, tcp_probe
from pyschedvisu_core import diagnosis
from tests.conftest import free_port
from tests.fixtures.orthanc import Orthanc, start_orthanc


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def write_config(path: Path, port: int, called_ae: str, data: Path, **pacs: Any) -> Path:
    extra = "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in pacs.items())  # fmt: skip
    path.write_text(
        f"""
[pacs]
port = {port}
called_ae = "{called_ae}"
move_port = 11199
op_retries = 1
backoff_base_s = 0.01
backoff_max_s = 0.05
backoff_jitter_s = 0.0
connect_timeout_s = 2.0
{extra}
[paths]
data_dir = "{data.as_posix()}"
""",
        encoding="utf-8",
    )
    return path


def run(cfg: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


# -- the diagnoses, one by one ---------------------------------------------------------------


def test_rejection_reasons_become_what_to_ask() -> None:
    calling = diagnosis.rejected(1, 1, 3, called_ae="PACS", calling_ae="PYSCHEDVISU", move_port=11113)  # fmt: skip
    assert calling.kind == "rejected-calling-ae"
    assert "calling AE title not recognised" in calling.summary and "permanently" in calling.summary
    assert "register 'PYSCHEDVISU'" in calling.hint and "port 11113 for C-MOVE" in calling.hint
    called = diagnosis.rejected(1, 1, 7, called_ae="PACS", calling_ae="PYSCHEDVISU")
    assert called.kind == "rejected-called-ae"
    assert "is not called 'PACS' (pacs.called_ae)" in called.hint
    other = diagnosis.rejected(1, 2, 2, called_ae="PACS", calling_ae="ME")
    assert other.kind == "rejected" and "protocol version not supported" in other.summary


def test_tcp_probe_tells_a_closed_port_from_a_listening_one() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert tcp_probe("127.0.0.1", listening.getsockname()[1], 2.0) == "ok"
    assert tcp_probe("127.0.0.1", free_port(), 2.0) == "refused"
    assert tcp_probe("no-such-host.invalid", 104, 2.0) == "unresolved"
    told = diagnosis.unreachable("pacs.local", 104, "timeout")
    assert told.kind == "no-connection" and "firewall" in told.summary
    assert "open that port" in told.hint


# -- against the demo PACS -------------------------------------------------------------------


def test_pacs_check_and_retrieve_tell_a_rejected_calling_ae(
    demo_pacs: Callable[..., Any], tiny_pacs_dir: Path, tmp_path: Path
) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(reject_calling_aes={"PYSCHEDVISU"}))
    cfg = write_config(
        tmp_path / "c.toml", pacs.port, pacs.ae_title, tmp_path / "data", max_concurrent=1
    )
    res = run(cfg, "pacs", "check")
    assert res.exit_code == 1
    assert "NOT usable: association rejected permanently by the PACS (service user): calling AE title not recognised" in res.output  # fmt: skip
    assert "hint: the PACS does not know our AE title 'PYSCHEDVISU' (pacs.calling_ae)" in res.output  # fmt: skip
    res = run(cfg, "retrieve", "--start", "2024-03-04", "--end", "2024-03-05")
    assert res.exit_code == 1
    assert res.output.count("Hint: the PACS does not know our AE title 'PYSCHEDVISU'") == 1
    assert "not retrieved (stopped" in res.output  # the next day is not tried the same way


def test_pacs_check_and_retrieve_tell_nothing_listens(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", free_port(), "PACS", tmp_path / "data")
    res = run(cfg, "pacs", "check")
    assert res.exit_code == 1
    assert "no association with 127.0.0.1:" in res.output
    assert "the connection is refused (nothing listens there)" in res.output
    assert "hint: check pacs.host and pacs.port" in res.output
    res = run(cfg, "retrieve", "--start", "2024-03-04", "--end", "2024-03-04")
    assert res.exit_code == 1
    assert "hint: no association with 127.0.0.1:" in res.output
    assert "Hint: check pacs.host and pacs.port" in res.output


# -- against Orthanc 1.10 --------------------------------------------------------------------


@pytest.mark.integration
def test_orthanc_accepts_an_unregistered_calling_ae_then_drops_its_first_query(
    tiny_pacs_dir: Path, orthanc_factory: Callable[..., Orthanc], tmp_path: Path
) -> None:
    """Orthanc 1.10 (DicomAlwaysAllowEcho, not DicomAlwaysAllowFind) accepts any
    association and answers C-ECHO; a C-FIND from an AE title missing from DicomModalities
    is refused by aborting the association ("DICOM authorization rejected" in its log)."""
    orthanc = orthanc_factory(tiny_pacs_dir, "Always")
    cfg = write_config(
        tmp_path / "c.toml", orthanc.dicom_port, orthanc.aet, tmp_path / "data", calling_ae="STRANGER"
    )  # fmt: skip
    res = run(cfg, "pacs", "check")
    assert res.exit_code == 1
    assert "C-ECHO ORTHANC@" in res.output and ": ok (" in res.output
    assert "the PACS accepted our association, answered C-ECHO, then dropped our first C-FIND without an answer" in res.output  # fmt: skip
    assert "hint: ask the PACS team to register 'STRANGER' with this machine's address, port 11199 for C-MOVE" in res.output  # fmt: skip
    assert "Orthanc: in DicomModalities" in res.output
    assert "not listed" in orthanc.log_tail(200) or "rejected" in orthanc.log_tail(200)
    res = run(cfg, "retrieve", "--start", "2024-03-04", "--end", "2024-03-04")
    assert res.exit_code == 1
    assert "hint: the PACS accepted our association then dropped our first C-FIND" in res.output
    assert "register 'STRANGER'" in res.output


@pytest.mark.integration
def test_orthanc_checking_the_called_ae_rejects_the_wrong_one(
    tiny_pacs_dir: Path, tmp_path: Path
) -> None:
    orthanc = start_orthanc(tmp_path / "orthanc", extra={"DicomCheckCalledAet": True})
    try:
        cfg = write_config(tmp_path / "c.toml", orthanc.dicom_port, "NOTORTHANC", tmp_path / "d")
        res = run(cfg, "pacs", "check")
        assert res.exit_code == 1
        assert "called AE title not recognised" in res.output
        assert "hint: the PACS is not called 'NOTORTHANC' (pacs.called_ae): ask the PACS team for its AE title" in res.output  # fmt: skip
    finally:
        orthanc.stop()

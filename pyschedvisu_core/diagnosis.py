"""Why a PACS does not let us in, and the one line to ask its team (``pacs check``, retrieval).

Three ways to fail, told apart because each needs another person to act:

- **no association at all**: nothing answers at host:port (connection refused, timed out, a
  name that does not resolve): host, port or a firewall between us and the PACS;
- **association rejected** (A-ASSOCIATE-RJ, PS3.8 9.3.4): the PACS says why, e.g. the AE title
  we called is not its own, or ours is not registered there;
- **accepted, then dropped**: the association is accepted (often C-ECHO too), but the first
  query or retrieve gets no answer and the association is aborted. The typical symptom of a
  calling AE title the PACS does not know (Orthanc accepts any association, answers C-ECHO,
  then refuses C-FIND from an AE title missing from its ``DicomModalities``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A-ASSOCIATE-RJ (result source, reason/diag.) -> meaning, PS3.8 Table 9-21.
REJECT_REASONS: dict[tuple[int, int], str] = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
REJECT_SOURCES = {1: "the PACS (service user)", 2: "its ACSE", 3: "its presentation layer"}
REJECT_RESULTS = {1: "permanently", 2: "for now"}


@dataclass(frozen=True)
class Diagnosis:
    """What happened (``summary``) and what to ask the PACS team (``hint``, one line)."""

    kind: str  # no-connection | rejected-called-ae | rejected-calling-ae | rejected | dropped
    summary: str
    hint: str

    def text(self) -> str:
        return f"{self.summary}. Hint: {self.hint}"


def unreachable(host: str, port: int, tcp: str) -> Diagnosis:
    """No association: ``tcp`` is what a plain TCP connection got (refused, timeout...).

    ``tcp == "ok"``: the port answers, but the association request was dropped without a
    rejection (a PACS aborting unknown callers, or not a DICOM port).
    """
    if tcp == "ok":
        return Diagnosis(
            "dropped",
            f"{host}:{port} accepts TCP connections but dropped our association request "
            "without a rejection",
            "ask the PACS team whether this is its DICOM port and whether our AE title and "
            "this machine's address are allowed to connect",
        )
    what = {
        "refused": "the connection is refused (nothing listens there)",
        "timeout": "the connection times out (a firewall, or a wrong address)",
        "unresolved": "the host name does not resolve",
    }.get(tcp, f"the connection fails ({tcp})")
    return Diagnosis(
        "no-connection",
        f"no association with {host}:{port}: {what}",
        "check pacs.host and pacs.port; ask the PACS team for the DICOM host, port and AE "
        "title of the PACS, and the network team to open that port from this machine",
    )


def rejected(
    result: int | None,
    source: int | None,
    reason: int | None,
    *,
    called_ae: str,
    calling_ae: str,
    move_port: int = 0,
    section: str = "pacs",
) -> Diagnosis:
    """An A-ASSOCIATE-RJ, told from its result / source / reason fields.

    ``section``: the config section whose keys name the peer (``pacs``, or ``worklist``
    for the RIS's Modality Worklist), so that the hint names the key to change.
    """
    team = _team(section)
    meaning = REJECT_REASONS.get((source or 0, reason or 0), f"reason {reason}")
    by = REJECT_SOURCES.get(source or 0, "the PACS")
    how = REJECT_RESULTS.get(result or 0, "")
    summary = f"association rejected {how} by {by}: {meaning}".replace("  ", " ")
    if (source, reason) == (1, 7):
        return Diagnosis(
            "rejected-called-ae",
            summary,
            f"{_peer(section)} is not called {called_ae!r} ({section}.called_ae): ask {team} for "
            "its AE title",
        )
    if (source, reason) == (1, 3):
        return Diagnosis(
            "rejected-calling-ae",
            summary,
            f"{_peer(section)} does not know our AE title {calling_ae!r} ({section}.calling_ae): "
            + register_hint(calling_ae, move_port, section),
        )
    return Diagnosis(
        "rejected",
        summary,
        f"ask {team} why it rejects AE title {calling_ae!r} calling {called_ae!r} "
        "from this machine",
    )


def _peer(section: str) -> str:
    return "the RIS" if section == "worklist" else "the PACS"


def _team(section: str) -> str:
    return "the RIS team" if section == "worklist" else "the PACS team"


def register_hint(calling_ae: str, move_port: int, section: str = "pacs") -> str:
    """What to ask for our AE title to be let in."""
    if section == "worklist":
        return (
            f"ask the RIS team to register {calling_ae!r} with this machine's address, "
            "allowed to query the Modality Worklist (C-FIND)"
        )
    port = f", port {move_port} for C-MOVE" if move_port else ""
    return (
        f"ask the PACS team to register {calling_ae!r} with this machine's address{port}, "
        "allowed to query (C-FIND) and retrieve (C-GET / C-MOVE)"
    )


def dropped(request: str, *, calling_ae: str, move_port: int = 0, echo_ok: bool) -> Diagnosis:
    """Accepted, then our first ``request`` got no answer and the association was aborted."""
    after = ", answered C-ECHO," if echo_ok else ""
    return Diagnosis(
        "dropped",
        f"the PACS accepted our association{after} then dropped our first {request} without "
        "an answer: it does not let our AE title do that",
        register_hint(calling_ae, move_port)
        + " (Orthanc: in DicomModalities, or DicomAlwaysAllowFind / Get / Move)",
    )


__all__ = [
    "REJECT_REASONS",
    "Diagnosis",
    "dropped",
    "register_hint",
    "rejected",
    "unreachable",
]

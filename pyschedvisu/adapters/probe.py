"""What a PACS accepts, found by asking it: C-ECHO, IMAGE-level timing, C-GET, C-MOVE.

Only the :class:`~pyschedvisu_core.transport.PacsClient` operations are used, so the probe
is paced, retried and stopped by the client like any other request.
"""

from __future__ import annotations

from pyschedvisu_core import queries
from pyschedvisu_core.errors import PacsError, PacsTimeoutError, PacsUnreachableError
from pyschedvisu_core.transport import Capabilities, Method, PacsClient


def probe(
    client: PacsClient,
    sample: tuple[str, str] | None = None,
    *,
    thorough: bool = False,
    move_port: int = 0,
) -> Capabilities:
    """C-ECHO, then test IMAGE-level timing, C-GET and C-MOVE on ``sample`` (study, series).

    When IMAGE-level C-FIND answers the timing tags, C-GET / C-MOVE are not tried (no
    instance moves at all) unless ``thorough``: they are then only fallbacks, tried in
    order when a series needs them, and both are reported as usable. C-MOVE is not tried
    without a fixed ``move_port`` (an ephemeral one cannot be registered at the PACS). A PACS
    that stops answering meanwhile raises: what failed says nothing of what it accepts.
    """
    client.echo()
    if sample is None:
        return Capabilities(echo=True, notes=("no sample series to test retrieval with",))
    study_uid, series_uid = sample
    notes: list[str] = []
    responses = client.find("IMAGE", queries.image_query(study_uid, series_uid, timing=True))
    timing = any(queries.has_timing(r) for r in responses)
    notes.append(
        "IMAGE-level C-FIND returns AcquisitionTime"
        if timing
        else "IMAGE-level C-FIND does not return AcquisitionTime"
    )
    uids = [u for u in (queries.sop_uid(r) for r in responses) if u]
    ok: dict[Method, bool] = {"c-get": False, "c-move": False}
    if timing and not thorough:
        notes.append("C-GET / C-MOVE not tested: only fallbacks here")
        return Capabilities(
            echo=True, image_find_timing=True, c_get=True, c_move=True, notes=tuple(notes)
        )
    if not uids:
        notes.append("no instance found in the sample series: C-GET / C-MOVE not tested")
    methods: tuple[Method, ...] = ("c-get", "c-move")
    for method in methods:
        if not uids:
            break
        if method == "c-move" and not move_port:
            notes.append("C-MOVE not tested (pacs.move_port = 0)")
            continue
        try:
            got = client.fetch_headers(study_uid, series_uid, uids[:1], method)
            ok[method] = len(got) == 1
            notes.append(
                f"{method.upper()} works" if ok[method] else f"{method.upper()} delivered nothing"
            )
        except PacsUnreachableError:
            raise  # down (the circuit open): nothing learnt of what it accepts
        except PacsError as exc:
            notes.append(f"{method.upper()} refused: {exc}")
    if client.closed:
        # closed meanwhile (Ctrl-C): what failed says nothing of the PACS, remember nothing
        raise PacsTimeoutError("client closed during the probe")
    return Capabilities(
        echo=True,
        image_find_timing=timing,
        c_get=ok["c-get"],
        c_move=ok["c-move"],
        notes=tuple(notes),
    )


__all__ = ["probe"]

"""DIMSE status codes the client and the demo PACS speak (PS3.4 C.4, PS3.7 C), and what they mean.

The one place where a status number is named: the adapter reads them, the demo PACS answers
them, the retrieval decides on them through the predicates below.
"""

from __future__ import annotations

from typing import Final

SUCCESS: Final = 0x0000
CANCEL: Final = 0xFE00
#: An answer follows (0xFF01: with optional keys not supported).
PENDING_ANSWER: Final = 0xFF00
PENDING: Final = frozenset({PENDING_ANSWER, 0xFF01})
#: "Refused: out of resources" (PS3.4 C.4.1.1.4 / C.4.2.1.4; 0xA7xx in general).
OUT_OF_RESOURCES: Final = 0xA700
#: "Refused: out of resources – unable to perform sub-operations" (C-GET / C-MOVE).
SUBOPERATIONS_REFUSED: Final = 0xA702
#: C-MOVE: the destination AE title is unknown to the PACS (ours not registered there).
MOVE_DESTINATION_UNKNOWN: Final = 0xA801
#: "Identifier does not match SOP Class".
BAD_IDENTIFIER: Final = 0xA900
#: "Unable to process" (the generic failure; 0xCxxx in general).
UNABLE_TO_PROCESS: Final = 0xC000
#: What the 2019 hospital PACS answered to bursts (DOMAIN §2.4).
BUSY: Final = 0xC336
#: Our Storage SCP: a dataset it cannot read ("Cannot understand").
CANNOT_UNDERSTAND: Final = 0xC210


def is_pending(code: int) -> bool:
    """More answers follow."""
    return code in PENDING


def is_busy(code: int) -> bool:
    """'Busy / out of resources': worth a paced retry, the PACS will answer later."""
    return code == BUSY or OUT_OF_RESOURCES <= code <= 0xA7FF


def is_warning(code: int) -> bool:
    """A final status that delivered what it could (0xBxxx: some sub-operations failed)."""
    return 0xB000 <= code <= 0xBFFF


def refuses_identifier(code: int | None) -> bool:
    """True when a request failed on its identifier (0xA900, 0xCxxx) or was not accepted (None).

    A PACS answering so to a list of UIDs will answer so again: that form is given up.
    """
    if code is None or code == BAD_IDENTIFIER:
        return True
    return UNABLE_TO_PROCESS <= code <= 0xCFFF and not is_busy(code)

"""Fast, deterministic DICOM Part 10 encoding for the synthetic department.

pydicom's writer costs ~40 µs per element, too slow for ~1,000,000 instances in the demo
department, so files are encoded here directly (Explicit VR Little Endian, defined
lengths only); pydicom is used only for the data dictionary and, in the tests, to read
the files back. A series shares almost every attribute between its instances: the static
part is encoded once and split around the few attributes that change per instance
(SOP Instance UID, times, instance number, position), so each file is a join of chunks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLEMENTATION_UID = "2.25.229461862186347305335469520738711196212"  # fixed, seed-independent
IMPLEMENTATION_VERSION = "PYSCHEDVISU_SYN"

# VRs with a 4-byte length field in Explicit VR Little Endian.
_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_PREAMBLE = b"\x00" * 128 + b"DICM"
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)

#: Elements whose dictionary VR is ambiguous: the VR we write.
_VR_OVERRIDE = {"PixelData": "OW"}

#: Keywords whose value may change from one instance to the next.
DYNAMIC = (
    "SOPInstanceUID",
    "AcquisitionTime",
    "ContentTime",
    "InstanceNumber",
    "ImagePositionPatient",
    "SliceLocation",
    "ImageIndex",
)


@lru_cache(maxsize=512)
def tag_vr(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a dictionary keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    vr = _VR_OVERRIDE.get(keyword) or dictionary_VR(tag)
    if " or " in vr:
        raise ValueError(f"{keyword}: ambiguous VR {vr!r}, add it to _VR_OVERRIDE")
    return tag, vr


def value_bytes(vr: str, value: Any) -> bytes:
    """The bytes a value is encoded as, before its padding (what a reader strips)."""
    if vr == "SQ":
        return b"".join(_item(item) for item in value)
    if vr in ("OB", "OW", "UN"):
        return bytes(value)
    if vr == "US":
        values = value if isinstance(value, list | tuple) else [value]
        return struct.pack(f"<{len(values)}H", *values)
    if vr == "UL":
        values = value if isinstance(value, list | tuple) else [value]
        return struct.pack(f"<{len(values)}I", *values)
    if vr == "AT":
        values = value if isinstance(value, list | tuple) else [value]
        return b"".join(struct.pack("<HH", v >> 16, v & 0xFFFF) for v in values)
    if isinstance(value, list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).encode("latin-1")


def encode_element(tag: int, vr: str, value: Any) -> bytes:
    """One Explicit VR Little Endian element with a defined length (padded to even)."""
    data = value_bytes(vr, value)
    if len(data) % 2:
        data += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2s2xI", group, elem, vr.encode(), len(data)) + data
    if len(data) > 0xFFFF:
        raise ValueError(f"{tag:08X}: value too long for VR {vr}")
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(data)) + data


def _sorted_elements(attrs: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
    out = []
    for keyword, value in attrs.items():
        if value is None:
            continue  # None = attribute absent
        tag, vr = tag_vr(keyword)
        out.append((tag, vr, value))
    out.sort(key=lambda e: e[0])
    return out


def encode_dataset(attrs: Mapping[str, Any]) -> bytes:
    """A dataset (keyword -> value; lists for multi-values and sequences of dicts)."""
    return b"".join(encode_element(tag, vr, value) for tag, vr, value in _sorted_elements(attrs))


def _item(attrs: Mapping[str, Any]) -> bytes:
    body = encode_dataset(attrs)
    return _ITEM + struct.pack("<I", len(body)) + body


def file_meta(sop_class: str, sop_instance: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta group for one instance."""
    head = encode_element(0x00020001, "OB", b"\x00\x01") + encode_element(
        0x00020002, "UI", sop_class
    )
    inst = encode_element(0x00020003, "UI", sop_instance)
    body_len = len(head) + len(inst) + len(_META_TAIL)
    return b"".join((_PREAMBLE, encode_element(0x00020000, "UL", body_len), head, inst, _META_TAIL))


_META_TAIL = (
    encode_element(0x00020010, "UI", EXPLICIT_LE)
    + encode_element(0x00020012, "UI", IMPLEMENTATION_UID)
    + encode_element(0x00020013, "SH", IMPLEMENTATION_VERSION)
)


def _short_text(header: bytes, text: str, pad: bytes) -> bytes:
    """A short-VR text element from its pre-packed 6-byte tag+VR header (hot path)."""
    data = text.encode("latin-1")
    if len(data) % 2:
        data += pad
    return header + struct.pack("<H", len(data)) + data


class SeriesTemplate:
    """The static attributes of one series, pre-encoded around the :data:`DYNAMIC` ones."""

    def __init__(self, static: Mapping[str, Any], sop_class: str) -> None:
        clash = [k for k in DYNAMIC if static.get(k) is not None]
        if clash:
            raise ValueError(f"dynamic attributes {clash} must not be in the static dataset")
        self.sop_class = sop_class
        dyn = sorted(((k, *tag_vr(k)) for k in DYNAMIC), key=lambda d: d[1])
        self._dyn = [
            (k, tag, vr, struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode()))
            for k, tag, vr in dyn
        ]
        elements = _sorted_elements(static)
        # chunk i holds the static elements between dynamic attribute i-1 and i
        self.chunks: list[bytes] = []
        i = 0
        for _, dtag, _ in dyn:
            j = i
            while j < len(elements) and elements[j][0] < dtag:
                j += 1
            self.chunks.append(b"".join(encode_element(*e) for e in elements[i:j]))
            i = j
        self.chunks.append(b"".join(encode_element(*e) for e in elements[i:]))
        self._meta_head = _PREAMBLE
        self._meta_class = encode_element(0x00020001, "OB", b"\x00\x01") + encode_element(
            0x00020002, "UI", sop_class
        )
        self._meta_inst = struct.pack("<HH2s", 0x0002, 0x0003, b"UI")

    def instance(self, values: Mapping[str, Any]) -> bytes:
        """A whole Part 10 file; ``values`` maps dynamic keywords to values (None/absent = omitted)."""
        inst = _short_text(self._meta_inst, values["SOPInstanceUID"], b"\x00")
        body_len = len(self._meta_class) + len(inst) + len(_META_TAIL)
        parts = [
            _PREAMBLE,
            encode_element(0x00020000, "UL", body_len),
            self._meta_class,
            inst,
            _META_TAIL,
        ]
        parts.append(self.chunks[0])
        for (keyword, tag, vr, header), chunk in zip(self._dyn, self.chunks[1:], strict=True):
            value = values.get(keyword)
            if value is not None:
                if vr == "US":
                    parts.append(encode_element(tag, vr, value))
                else:
                    parts.append(_short_text(header, str(value), b"\x00" if vr == "UI" else b" "))
            parts.append(chunk)
        return b"".join(parts)

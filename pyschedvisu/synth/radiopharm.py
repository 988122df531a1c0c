"""The injections of a synthetic day (DOMAIN §8): what each PT / NM series' Radiopharmaceutical
Information Sequence says, and what a perfect retrieval must store of it.

Drawn after the rest of the day is planned, from a random source of their own
(``radiopharm|<seed>|<day>``), so the studies, series and times of a day do not change with
them. Each study gets one injection before its first PT / NM acquisition (an Rb-82 study one per
PET series, rest and stress); uptake times and activities follow the study type, FDG studies
with some uptakes out of the 55–75 min window. A few studies a day get broken values (no
sequence, no item, a garbled time, a negative, garbled, missing or absurd dose, a dose in the
wrong unit) or an injection after the scan start / more than 24 h before it. The expected
values are set here, beside what is written: the truth never reads the files.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyschedvisu.synth import catalog as cat
from pyschedvisu_core.radiopharm import Issue

if TYPE_CHECKING:
    from pyschedvisu.synth.plan import Series, Study

#: Radionuclides: code (value, scheme), code meaning, half-life (s). SRT codes where the
#: DICOM CID 4020 ones are common in headers, a local scheme otherwise.
NUCLIDES: dict[str, tuple[str, str, str, float]] = {
    "F18": ("C-111A1", "SRT", "^18^Fluorine", 6586.2),
    "Ga68": ("GA68", "99PYSV", "^68^Gallium", 4062.6),
    "Rb82": ("RB82", "99PYSV", "^82^Rubidium", 76.38),
    "Tc99m": ("C-163A8", "SRT", "^99m^Technetium", 21624.12),
    "I123": ("I123", "99PYSV", "^123^Iodine", 47592.0),
    "Lu177": ("LU177", "99PYSV", "^177^Lutetium", 574300.8),
    "Y90": ("Y90", "99PYSV", "^90^Yttrium", 230400.0),
}


@dataclass(frozen=True)
class Tracer:
    """How a study type is injected: radiopharmaceutical, nuclide, uptake (min), activity (MBq)."""

    name: str
    nuclide: str
    uptake_min: tuple[float, float]
    activity_mbq: tuple[float, float]
    #: FDG oncology: uptake ~ N(63, 6) min, some out of the EANM 55–75 window
    fdg_spread: bool = False


_FDG = "Fludeoxyglucose F^18^"
#: By study label (catalog.StudyType.label); PET and NM defaults below.
TRACERS: dict[str, Tracer] = {
    "FDG STAND.": Tracer(_FDG, "F18", (50, 80), (120, 420), fdg_spread=True),
    "FDG CORPS": Tracer(_FDG, "F18", (50, 80), (120, 420), fdg_spread=True),
    "FDG ORL": Tracer(_FDG, "F18", (50, 80), (120, 420), fdg_spread=True),
    "SARCOIDOSE": Tracer(_FDG, "F18", (60, 90), (180, 350)),
    "FDG CERV.": Tracer(_FDG, "F18", (30, 45), (150, 250)),
    "TAU CERV.": Tracer("Flortaucipir F^18^", "F18", (80, 100), (340, 390)),
    "FET CERV.": Tracer("Fluoroethyltyrosine F^18^", "F18", (20, 30), (180, 220)),
    "GA68 PSMA": Tracer("Ga-68 PSMA-11", "Ga68", (55, 75), (100, 200)),
    "GA68 DOTA": Tracer("Ga-68 DOTATATE", "Ga68", (45, 70), (100, 200)),
    "GDOTA": Tracer("Ga-68 DOTATOC", "Ga68", (45, 70), (100, 200)),
    "RB82 COEUR": Tracer("Rubidium chloride Rb-82", "Rb82", (0, 0.6), (740, 1480)),
    "OS 3 PHASE": Tracer("Tc-99m oxidronate (HDP)", "Tc99m", (0, 0.3), (550, 800)),
    "OS 1 PHASE": Tracer("Tc-99m oxidronate (HDP)", "Tc99m", (150, 210), (550, 800)),
    "GGL": Tracer("Tc-99m nanocolloid", "Tc99m", (60, 240), (20, 120)),
    "VIDANGE": Tracer("Tc-99m sulfur colloid (meal)", "Tc99m", (0, 5), (20, 40)),
    "PERFPREOP": Tracer("Tc-99m macroaggregated albumin", "Tc99m", (5, 15), (80, 200)),
    "LYMPHOGRA.": Tracer("Tc-99m nanocolloid", "Tc99m", (0, 0.5), (20, 80)),
    "MAA SIRT": Tracer("Tc-99m macroaggregated albumin", "Tc99m", (30, 90), (80, 200)),
    "PARATHYRO": Tracer("Tc-99m sestamibi", "Tc99m", (10, 15), (600, 750)),
    "PSMA": Tracer("Lu-177 PSMA-617", "Lu177", (1200, 1380), (6800, 7600)),
    "DATSCAN": Tracer("I-123 ioflupane", "I123", (180, 240), (150, 185)),
    "Y90 SIRT": Tracer("Y-90 glass microspheres", "Y90", (60, 240), (1000, 3000)),
    "HEPATOBIL.": Tracer("Tc-99m mebrofenin", "Tc99m", (0, 0.5), (100, 200)),
    "HIPP": Tracer("I-123 hippuran", "I123", (0, 0.5), (20, 40)),
    "MAG3": Tracer("Tc-99m mertiatide (MAG3)", "Tc99m", (0, 0.5), (70, 100)),
    "CAPS. I123": Tracer("I-123 sodium iodide (capsule)", "I123", (180, 240), (5, 15)),
    "THYR. TC99": Tracer("Tc-99m pertechnetate", "Tc99m", (15, 25), (70, 150)),
    "BDF": Tracer("Tc-99m pertechnetate", "Tc99m", (60, 120), (100, 200)),
    "THYRO MIBI": Tracer("Tc-99m sestamibi", "Tc99m", (10, 20), (500, 700)),
    "VENT": Tracer("Tc-99m Technegas", "Tc99m", (0, 5), (20, 40)),
    "PERF": Tracer("Tc-99m macroaggregated albumin", "Tc99m", (5, 15), (100, 200)),
}
PET_DEFAULT = Tracer("Fluciclovine F^18^", "F18", (10, 70), (150, 350))
NM_DEFAULT = Tracer("Tc-99m pertechnetate", "Tc99m", (10, 120), (100, 400))
#: The EANM FDG PET/CT v2.0 window the synthetic FDG uptakes are drawn around (min).
FDG_WINDOW = (55.0, 75.0)


@dataclass
class SeriesRadiopharm:
    """One series' sequence as written, and what a perfect retrieval stores of it.

    ``item``: the first item's attributes (keyword -> value; None: the sequence is absent,
    ``empty``: present without item). ``expected``: radiopharmaceutical, radionuclide,
    injected_at, activity_mbq, half_life_s; ``issues``: the issue codes, in reading order.
    """

    modality: str
    item: dict[str, Any] | None
    expected: dict[str, Any]
    issues: list[str] = field(default_factory=list)
    empty: bool = False

    def attrs(self) -> dict[str, Any]:
        """The series' attributes to write (keyword -> value)."""
        if self.empty:
            return {"RadiopharmaceuticalInformationSequence": []}
        if self.item is None:
            return {}
        return {"RadiopharmaceuticalInformationSequence": [self.item]}


def _label_of(study: Study) -> str | None:
    """The catalog label a study's description was drawn for (None: unknown)."""
    types: list[cat.StudyType] = []
    if study.machine in cat.MACHINES:
        types = list(cat.MACHINES[study.machine].types)
    for st in types:
        if study.description in st.descriptions:
            return st.label
    if study.description in cat.VENT.descriptions:
        return "VENT"
    if study.description in cat.PERF.descriptions:
        return "PERF"
    for m in cat.MACHINES.values():  # images from elsewhere, mixed cases
        for st in m.types:
            if study.description in st.descriptions:
                return st.label
    return None


def _style(study: Study) -> str:
    """How the study's console writes the injection: ``frac`` (DT and TM, Siemens), ``full``
    (TM to the second, GE) or ``min`` (TM to the minute)."""
    if study.machine in cat.MACHINES:
        return cat.MACHINES[study.machine].tm_style
    style = study.series[0].tm_style if study.series else "full"
    return "min" if style in ("min", "hour") else style


def _floor(t: dt.datetime, style: str) -> dt.datetime:
    t = t.replace(microsecond=0)
    return t.replace(second=0) if style == "min" else t


def _isotope_series(study: Study) -> list[Series]:
    return [
        s for s in study.series if s.modality in ("PT", "NM") and not s.sop_class.endswith(".7")
    ]


def _first_start(series: Sequence[Series]) -> dt.datetime:
    kept = [s.span()[0] for s in series if s.status == "kept"]
    return min(kept) if kept else min(s.times[0] for s in series)


def _uptake_min(rng: random.Random, tracer: Tracer) -> float:
    if tracer.fdg_spread:
        if rng.random() < 0.15:  # a late or an early start: out of the window
            return rng.uniform(40, 54) if rng.random() < 0.35 else rng.uniform(76, 115)
        return min(max(rng.gauss(63, 6), FDG_WINDOW[0]), FDG_WINDOW[1])
    return rng.uniform(*tracer.uptake_min)


@dataclass
class _Injection:
    tracer: Tracer
    at: dt.datetime
    activity_mbq: float  # as written (exactly: integer Bq in PET, 0.1 MBq in NM)


def _written(inj: _Injection, modality: str, style: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the item as written, the values a perfect reading gives)."""
    code, scheme, meaning, half_life = NUCLIDES[inj.tracer.nuclide]
    item: dict[str, Any] = {
        "Radiopharmaceutical": inj.tracer.name,
        "RadionuclideHalfLife": f"{half_life:g}",
        "RadionuclideCodeSequence": [
            {"CodeValue": code, "CodingSchemeDesignator": scheme, "CodeMeaning": meaning}
        ],
    }
    if style == "frac":
        item["RadiopharmaceuticalStartDateTime"] = inj.at.strftime("%Y%m%d%H%M%S.%f")
        item["RadiopharmaceuticalStartTime"] = inj.at.strftime("%H%M%S.%f")
    else:
        item["RadiopharmaceuticalStartTime"] = inj.at.strftime(
            "%H%M" if style == "min" else "%H%M%S"
        )
    if modality == "PT":  # Bq (PET Isotope Module)
        bq = round(inj.activity_mbq * 1e6)
        item["RadionuclideTotalDose"] = str(bq)
        activity = float(str(bq)) / 1e6
        item["RadionuclidePositronFraction"] = "0.967" if inj.tracer.nuclide == "F18" else "0.9"
    else:  # MBq (NM Isotope Module)
        text = f"{inj.activity_mbq:.1f}"
        item["RadionuclideTotalDose"] = text
        activity = float(text)
    expected = {
        "radiopharmaceutical": inj.tracer.name,
        "radionuclide": meaning,
        "injected_at": inj.at,
        "activity_mbq": activity,
        "half_life_s": float(f"{half_life:g}"),
    }
    return item, expected


def _series_plan(inj: _Injection, s: Series, style: str) -> SeriesRadiopharm:
    item, expected = _written(inj, s.modality, style)
    return SeriesRadiopharm(s.modality, item, expected)


#: The broken cases of a day, one study each, by the day's parity (even, odd ordinal): every
#: one of them occurs at least twice in a week.
BROKEN = (
    (
        "radiopharm_no_sequence",
        "radiopharm_bad_datetime",  # a Siemens study (DT)
        "radiopharm_negative_dose",
        "radiopharm_absurd_dose",
        "injection_after_scan",
    ),
    (
        "radiopharm_empty_sequence",
        "radiopharm_bad_time",  # a GE / Millennium study (TM)
        "radiopharm_garbled_dose",
        "radiopharm_missing_values",
        "radiopharm_nm_dose_in_bq",  # an NM study
        "injection_over_24h",  # a Siemens study (DT)
    ),
)
_GARBLED = ("1O3O15", "N/A", "25:61:00")


def _break(case: str, plans: list[SeriesRadiopharm]) -> None:
    """Break every isotope series of a study one way (``case``, see :data:`BROKEN`)."""
    for sr in plans:
        item = sr.item
        assert item is not None
        if case in ("radiopharm_no_sequence", "radiopharm_empty_sequence"):
            sr.empty = case == "radiopharm_empty_sequence"
            sr.item = None
            sr.expected = dict.fromkeys(sr.expected)
            sr.issues = [Issue.EMPTY_SEQUENCE if sr.empty else Issue.NO_SEQUENCE]
        elif case == "radiopharm_bad_datetime":  # no TM to fall back on
            item.pop("RadiopharmaceuticalStartTime", None)
            stamp = item["RadiopharmaceuticalStartDateTime"]
            item["RadiopharmaceuticalStartDateTime"] = stamp[:4] + "O" + stamp[5:]
            sr.expected["injected_at"] = None
            sr.issues = [Issue.INJECTION_UNPARSEABLE]
        elif case == "radiopharm_bad_time":
            item["RadiopharmaceuticalStartTime"] = _GARBLED[len(item["Radiopharmaceutical"]) % 3]
            sr.expected["injected_at"] = None
            sr.issues = [Issue.INJECTION_UNPARSEABLE]
        elif case == "radiopharm_negative_dose":
            item["RadionuclideTotalDose"] = "-" + item["RadionuclideTotalDose"]
            sr.expected["activity_mbq"] = None
            sr.issues = [Issue.DOSE_NOT_POSITIVE]
        elif case == "radiopharm_garbled_dose":
            item["RadionuclideTotalDose"] = "N/A"
            sr.expected["activity_mbq"] = None
            sr.issues = [Issue.DOSE_UNPARSEABLE]
        elif case == "radiopharm_missing_values":  # an item filled in part
            del item["RadionuclideTotalDose"], item["RadionuclideCodeSequence"]
            sr.expected["activity_mbq"] = sr.expected["radionuclide"] = None
            sr.issues = [Issue.NO_RADIONUCLIDE, Issue.DOSE_MISSING]
        elif case in ("radiopharm_absurd_dose", "radiopharm_nm_dose_in_bq"):
            # six zeros too many in a PET dose, or an NM dose written in Bq (PET's unit)
            dose = item["RadionuclideTotalDose"]
            nm = sr.modality == "NM"
            item["RadionuclideTotalDose"] = str(round(float(dose) * 1e6)) if nm else dose + "000000"
            sr.expected["activity_mbq"] = None
            sr.issues = [Issue.DOSE_IMPLAUSIBLE]
        else:
            raise ValueError(f"unknown broken case {case!r}")


def assign_injections(studies: Sequence[Study], day: dt.date, seed: int) -> None:
    """Give every PT / NM series of ``studies`` its sequence (in place; see the module)."""
    rng = random.Random(f"radiopharm|{seed}|{day.isoformat()}")
    plans: dict[str, list[SeriesRadiopharm]] = {}
    for study in studies:
        iso = _isotope_series(study)
        if not iso:
            continue
        label = _label_of(study)
        default = PET_DEFAULT if any(s.modality == "PT" for s in iso) else NM_DEFAULT
        tracer = TRACERS.get(label or "", default)
        style = _style(study)
        activity = round(rng.uniform(*tracer.activity_mbq), 1)
        if tracer.fdg_spread:
            activity = round(min(max(rng.gauss(250, 45), tracer.activity_mbq[0]), 420.0), 1)
        if label == "RB82 COEUR":  # rest and stress: an injection each, seconds before
            for s in iso:
                at = _floor(s.times[0] - dt.timedelta(seconds=rng.uniform(0, 36)), style)
                s.radiopharm = _series_plan(_Injection(tracer, at, activity), s, style)
            plans[study.uid] = [s.radiopharm for s in iso if s.radiopharm is not None]
            continue
        uptake = dt.timedelta(minutes=_uptake_min(rng, tracer))
        inj = _Injection(tracer, _floor(_first_start(iso) - uptake, style), activity)
        for s in iso:
            s.radiopharm = _series_plan(inj, s, style)
        plans[study.uid] = [s.radiopharm for s in iso if s.radiopharm is not None]
        if tracer.fdg_spread:
            minutes = (_first_start(iso) - inj.at).total_seconds() / 60
            if not FDG_WINDOW[0] <= minutes <= FDG_WINDOW[1]:
                study.cases.append("uptake_out_of_window")
    _break_some(studies, plans, rng)


def _eligible(study: Study, pet: bool) -> bool:
    """A reportable study whose PT (or NM) acquisitions are all kept with their institution
    and carry one injection (not an Rb-82 rest / stress pair)."""
    iso = _isotope_series(study)
    if study.reason is not None or study.machine not in cat.MACHINES or not iso:
        return False
    if any(c.startswith(("radiopharm_", "injection_")) for c in study.cases):
        return False
    if _label_of(study) == "RB82 COEUR":
        return False
    return all(
        s.modality == ("PT" if pet else "NM")
        and s.status == "kept"
        and s.institution is not None
        and s.radiopharm is not None
        for s in iso
    )


def _break_some(
    studies: Sequence[Study], plans: dict[str, list[SeriesRadiopharm]], rng: random.Random
) -> None:
    pet = [s for s in studies if _eligible(s, pet=True)]
    nm = [s for s in studies if _eligible(s, pet=False)]
    rng.shuffle(pet)
    rng.shuffle(nm)
    odd = bool(studies) and studies[0].day.toordinal() % 2 == 1
    for case in BROKEN[odd]:
        moved = case in ("injection_after_scan", "injection_over_24h")
        pool = pet
        if case in ("injection_over_24h", "radiopharm_bad_datetime"):  # consoles writing a DT
            pool = [s for s in pet if _style(s) == "frac"]
        elif case == "radiopharm_bad_time":  # consoles writing a TM only
            pool = [s for s in pet if _style(s) != "frac"]
        elif case == "radiopharm_nm_dose_in_bq":
            pool = nm
        if moved:  # one acquisition, so that the uptake is its own
            pool = [s for s in pool if len(_isotope_series(s)) == 1]
        study = next((s for s in pool if s in pet or s in nm), None)
        if study is None:
            continue
        for group in (pet, nm):
            if study in group:
                group.remove(study)
        study.cases.append(case)
        if not moved:
            _break(case, plans[study.uid])
            continue
        (s,) = _isotope_series(study)
        assert s.radiopharm is not None
        start, style = _first_start([s]), _style(study)
        if case == "injection_after_scan":
            at = _floor(start + dt.timedelta(seconds=rng.uniform(120, 900)), style)
        else:
            at = _floor(start - dt.timedelta(days=2, minutes=rng.uniform(50, 70)), style)
        tracer = TRACERS.get(_label_of(study) or "", PET_DEFAULT)
        activity = s.radiopharm.expected["activity_mbq"]
        s.radiopharm = _series_plan(_Injection(tracer, at, activity), s, style)


def uptake_truth(series: Sequence[Series]) -> dict[str, Any]:
    """The injection columns of a study take from its kept PT / NM series (the store's rule:
    the first series with an injection time, else the first; uptake from the first start)."""
    iso = sorted(
        (s for s in series if s.modality in ("PT", "NM") and s.radiopharm is not None),
        key=lambda s: (s.span()[0], s.uid),
    )
    if not iso:
        return {}
    chosen = next((s for s in iso if s.radiopharm and s.radiopharm.expected["injected_at"]), iso[0])
    rp = chosen.radiopharm
    assert rp is not None
    injected = rp.expected["injected_at"]
    uptake = (iso[0].span()[0] - injected).total_seconds() if injected is not None else None
    flag = None
    if uptake is not None and uptake < 0:
        flag = "injection_after_scan"
    elif uptake is not None and uptake > 24 * 3600:
        flag = "injection_over_24h"
    return {
        "tracer": rp.expected["radiopharmaceutical"],
        "radionuclide": rp.expected["radionuclide"],
        "injected_at": injected,
        "activity_mbq": rp.expected["activity_mbq"],
        "uptake_s": uptake,
        "uptake_flag": flag,
        "radiopharm_issue": "; ".join(rp.issues) or None,
    }


def series_truth(s: Series) -> dict[str, Any]:
    """What a perfect retrieval stores of one kept series' injection (nothing for CT)."""
    if s.radiopharm is None:
        return {}
    return {**s.radiopharm.expected, "radiopharm_issue": "; ".join(s.radiopharm.issues) or None}


__all__ = [
    "BROKEN",
    "NUCLIDES",
    "TRACERS",
    "SeriesRadiopharm",
    "assign_injections",
    "series_truth",
    "uptake_truth",
]

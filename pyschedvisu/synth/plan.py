"""The plan of one synthetic day: which studies, series and instances, with what timing.

Everything is drawn from a :class:`random.Random` seeded from ``(seed, day)`` only, so a day is
the same whatever range it is generated in. The plan records, for each series, the exact
values that will be written (instance times, NM durations) and what a perfect pipeline must
make of them (status, reason): the truth is derived from it, never from the files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from pyschedvisu.synth import catalog as cat
from pyschedvisu.synth.catalog import Machine, Part, StudyType
from pyschedvisu.synth.radiopharm import SeriesRadiopharm, assign_injections
from pyschedvisu_core.schema import Reason

# -- data -------------------------------------------------------------------------------


@dataclass
class Series:
    """One series as written, and what the rules must make of it."""

    uid: str
    number: int
    modality: str
    kind: str  # topo | ct | pt | brain | static | wb | dyn | spect | derived kind
    description: str
    protocol: str
    model: str | None  # None = ManufacturerModelName absent
    manufacturer: str
    institution: str | None
    sop_class: str
    image_type: tuple[str, ...]
    times: list[dt.datetime]  # AcquisitionTime of each instance (None inside = absent/garbled)
    tm_style: str  # full | frac | min | hour
    nm_timing: str | None = None  # phase | rotation | radial | plain | none
    nm_parts: list[tuple[int, int]] = field(default_factory=list)  # (frame ms, frames)
    brain_minutes: int | None = None
    series_date: bool = True  # False = SeriesDate absent (AcquisitionDate present)
    broken: dict[int, str] = field(
        default_factory=dict
    )  # instance index -> "missing" | garbled text
    status: str = "kept"  # kept | excluded | failed
    reason: str | None = None
    content_time: dt.datetime | None = None
    cases: list[str] = field(default_factory=list)
    station: str | None = None  # StationName of the scanner (None = absent)
    serial: str | None = None  # DeviceSerialNumber
    #: PT / NM: its Radiopharmaceutical Information Sequence and what is stored of it
    radiopharm: SeriesRadiopharm | None = None

    @property
    def n_instances(self) -> int:
        return len(self.times)

    @property
    def nm_duration_ms(self) -> int:
        return sum(ms * n for ms, n in self.nm_parts)

    @property
    def frames(self) -> int:
        return sum(n for _, n in self.nm_parts) if self.nm_parts else 1

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        """(start, end) by the rules of DOMAIN §3.3 — only meaningful for kept series."""
        first, last = self.times[0], self.times[-1]
        if self.modality == "NM":
            return first, first + dt.timedelta(milliseconds=self.nm_duration_ms)
        if self.brain_minutes is not None:
            return first, first + dt.timedelta(minutes=self.brain_minutes)
        return min(first, last), max(first, last)


@dataclass
class Study:
    uid: str
    day: dt.date
    machine: str | None  # display machine key of the scanner (None: images from elsewhere)
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession: str
    description: str
    series: list[Series] = field(default_factory=list)
    reason: str | None = None  # study-level exclusion
    cases: list[str] = field(default_factory=list)

    @property
    def start(self) -> dt.datetime:
        return min(s.times[0] for s in self.series)


@dataclass
class DayPlan:
    day: dt.date
    seed: int
    studies: list[Study]


# -- helpers ----------------------------------------------------------------------------


def uid(*parts: object) -> str:
    """A 2.25 UID fixed by ``parts`` (the seed, the day and a path inside the day)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big") or 1)


def day_rng(seed: int, day: dt.date) -> random.Random:
    """The random source of one day: depends on (seed, day) only."""
    digest = hashlib.sha256(f"pyschedvisu-synth|{seed}|{day.isoformat()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _minute_ceil(t: dt.datetime) -> dt.datetime:
    if t.second or t.microsecond:
        return t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return t


# -- the planner ------------------------------------------------------------------------


@dataclass
class _Block:
    """Studies (or takes) placed back to back on one machine."""

    items: list[tuple[Study, StudyType, int]]  # (study, type, take index)
    earliest: dt.datetime | None = None


class DayPlanner:
    """Plans one day of the department (see module docstring)."""

    def __init__(self, day: dt.date, seed: int, slots: dict[str, list[int]]) -> None:
        self.day = day
        self.seed = seed
        self.rng = day_rng(seed, day)
        self.slots = slots
        self.studies: list[Study] = []
        self._patients: set[str] = set()
        self._n = 0

    # -- identities ----------------------------------------------------------------
    def _uid(self, *parts: object) -> str:
        return uid(self.seed, self.day.isoformat(), *parts)

    def _patient(self) -> tuple[str, str, str, str]:
        rng = self.rng
        while True:
            pid = str(rng.randint(10_000_000, 99_999_999))
            if pid not in self._patients:
                self._patients.add(pid)
                break
        name = f"{rng.choice(cat.LAST_NAMES)}^{rng.choice(cat.FIRST_NAMES)}"
        birth = dt.date(rng.randint(1930, 2015), rng.randint(1, 12), rng.randint(1, 28)).strftime(
            "%Y%m%d"
        )
        return pid, name, birth, rng.choice("MF")

    def new_study(
        self,
        machine: str | None,
        description: str,
        patient: tuple[str, str, str, str] | None = None,
    ) -> Study:
        self._n += 1
        pid, name, birth, sex = patient or self._patient()
        study = Study(
            uid=self._uid("study", self._n),
            day=self.day,
            machine=machine,
            patient_id=pid,
            patient_name=name,
            birth_date=birth,
            sex=sex,
            accession=f"{self.day:%y%m%d}{self._n:04d}",
            description=description,
        )
        self.studies.append(study)
        return study

    # -- series --------------------------------------------------------------------
    def _series(
        self,
        study: Study,
        m: Machine,
        modality: str,
        kind: str,
        description: str,
        times: list[dt.datetime],
        **kw: Any,
    ) -> Series:
        number = len(study.series) + 1
        s = Series(
            uid=self._uid("series", study.uid, number),
            number=number,
            modality=modality,
            kind=kind,
            description=description,
            protocol=kw.pop("protocol", study.description),
            model=m.models.get(modality, m.models.get("NM") or m.models.get("PT")),
            manufacturer=m.manufacturer,
            institution=m.institution,
            station=m.station or None,
            serial=m.serial or None,
            sop_class=kw.pop("sop_class", None) or cat.SOP_OF_MODALITY[modality],
            image_type=kw.pop("image_type", ("ORIGINAL", "PRIMARY")),
            times=times,
            tm_style=kw.pop("tm_style", m.tm_style),
            **kw,
        )
        study.series.append(s)
        return s

    def _tick(self, m: Machine, t: dt.datetime, seconds: float) -> dt.datetime:
        """``t + seconds`` at the resolution the machine writes (µs, s or min)."""
        out = t + dt.timedelta(seconds=seconds)
        if m.tm_style == "frac":
            return out
        out = out.replace(microsecond=0)
        return _minute_ceil(out) if m.tm_style == "min" else out

    def _start(self, m: Machine, t: dt.datetime) -> dt.datetime:
        """A series start at the machine's resolution (Siemens consoles write microseconds)."""
        if m.tm_style == "frac":
            return t.replace(microsecond=self.rng.randrange(1_000_000))
        t = t.replace(microsecond=0)
        return _minute_ceil(t) if m.tm_style == "min" else t

    def add_part(
        self, study: Study, m: Machine, part: Part, t: dt.datetime
    ) -> tuple[Series, dt.datetime]:
        """Append one acquisition starting at (about) ``t``; returns it and its end."""
        rng = self.rng
        t = self._start(m, t)
        dur = rng.randint(part.lo, part.hi) if part.hi > part.lo else part.lo
        if part.kind == "topo":
            s = self._series(
                study,
                m,
                "CT",
                "topo",
                part.description or "Topogramme 0.6 T20f",
                [t],
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
            )
            return s, t
        if part.kind in ("ct", "pt", "brain"):
            modality = "CT" if part.kind == "ct" else "PT"
            n = rng.randint(5, 24) if modality == "CT" else rng.randint(5, 16)
            if modality == "CT":
                dur = rng.randint(15, 60)
            end = self._tick(m, t, dur)
            if part.kind == "brain":
                # the console stamps every slice with the start: only the description tells the end
                times = [t] * n
                s = self._series(
                    study,
                    m,
                    modality,
                    "brain",
                    part.description,
                    times,
                    brain_minutes=dur // 60,
                    image_type=("ORIGINAL", "PRIMARY"),
                )
                s.cases.append("brain_fdg")
                return s, self._tick(m, t, dur)
            step = (end - t) / (n - 1)
            times = [t + step * i for i in range(n - 1)] + [end]
            if m.tm_style != "frac":
                times = [x.replace(microsecond=0) for x in times[:-1]] + [end]
                if m.tm_style == "min":
                    times = [x.replace(second=0) for x in times[:-1]] + [end]
            desc = part.description or ("CT 3.0 B31f" if modality == "CT" else "PET AC")
            itype = (
                ("ORIGINAL", "PRIMARY", "AXIAL") if modality == "CT" else ("ORIGINAL", "PRIMARY")
            )
            s = self._series(study, m, modality, part.kind, desc, times, image_type=itype)
            return s, end
        # NM: one multi-frame instance; the duration is carried by the frame timing
        if part.kind == "dyn":
            first = rng.choice((1000, 2000))
            n1 = rng.randint(30, 60)
            rest = dur * 1000 - first * n1
            frame = 60_000 if rest >= 600_000 else 15_000
            n2 = max(1, rest // frame)
            parts = [(first, n1), (frame, n2)]
            timing, itype = "phase", ("ORIGINAL", "PRIMARY", "DYNAMIC", "EMISSION")
        elif part.kind == "spect":
            steps = rng.choice((60, 64, 90, 120))
            parts = [(max(1000, dur * 1000 // steps), steps)]
            timing = "radial" if rng.random() < 0.25 else "rotation"
            itype = ("ORIGINAL", "PRIMARY", "TOMO", "EMISSION")
        else:  # static / wb: frame duration x frames
            frames = 2 if part.kind == "wb" else rng.choice((1, 1, 2))
            parts = [(dur * 1000 // frames, frames)]
            timing = "plain"
            itype = (
                "ORIGINAL",
                "PRIMARY",
                "WHOLE BODY" if part.kind == "wb" else "STATIC",
                "EMISSION",
            )
        s = self._series(
            study,
            m,
            "NM",
            part.kind,
            part.description,
            [t],
            nm_timing=timing,
            nm_parts=parts,
            image_type=itype,
        )
        s.cases.append(f"nm_{timing}")
        return s, s.span()[1]

    def add_take(
        self, study: Study, m: Machine, parts: tuple[Part, ...], t: dt.datetime
    ) -> dt.datetime:
        """All parts of one take, back to back with short pauses; returns the end."""
        end = t
        for i, part in enumerate(parts):
            if i:
                t = self._tick(m, end, self.rng.randint(20, 150))
            _, end = self.add_part(study, m, part, t)
        return end

    # -- one machine ---------------------------------------------------------------
    def plan_machine(self, m: Machine, forced: list[_Block]) -> dt.datetime:
        """Fill the machine's day from its weekday slots; returns when it stops."""
        rng = self.rng
        slots = self.slots.get(m.key, [0] * 5)[self.day.weekday()]
        underused = rng.random() < 0.3
        util = rng.uniform(0.4, 0.7) if underused else rng.uniform(0.75, 1.0)
        n_studies = max(1, round(slots * util))
        weights = [st.weight for st in m.types]
        blocks: list[_Block] = []
        # a forced block counts its distinct studies (ventilation + perfusion count as one)
        n_forced = sum(len({id(it[0]) for it in b.items if it[1] is not cat.PERF}) for b in forced)
        for _ in range(max(0, n_studies - n_forced)):
            st = rng.choices(m.types, weights)[0]
            study = self.new_study(m.key, rng.choice(st.descriptions))
            blocks.append(_Block([(study, st, 0)]))
        rng.shuffle(blocks)
        # forced cases go among the first ones so that a short day still has them
        for b in forced:
            blocks.insert(rng.randint(0, min(len(blocks), 3)), b)
        if m.key == "millennium":
            # the first Millennium study starts on the hour: its console writes TM "08"
            t = dt.datetime.combine(self.day, dt.time(8, 0))
            blocks.insert(
                0,
                blocks.pop(
                    next(
                        i
                        for i, b in enumerate(blocks)
                        if len(b.items) == 1 and b.items[0][0].reason is None
                    )
                ),
            )
        else:
            t = dt.datetime.combine(self.day, dt.time(7, 30)) + dt.timedelta(
                seconds=rng.randint(0, 3600)
            )
        pending: list[_Block] = []
        placed: list[list[Series]] = []  # series of each block, in the order they were placed
        end = t
        while blocks or pending:
            pending.sort(key=lambda b: b.earliest or t)
            if pending and (not blocks or (pending[0].earliest or t) <= t):
                block = pending.pop(0)
                t = max(t, block.earliest or t)
            else:
                block = blocks.pop(0)
            placed.append([])
            for j, (study, st, take) in enumerate(block.items):
                if j:
                    t = self._tick(m, end, rng.randint(180, 420))
                before = len(study.series)
                end = self.add_take(study, m, st.takes[take], t)
                placed[-1] += study.series[before:]
                if take + 1 < len(st.takes):
                    later = end + dt.timedelta(seconds=rng.randint(*st.delay))
                    pending.append(_Block([(study, st, take + 1)], later))
            # PET patients follow each other; gamma camera appointments are spread over the day
            gap = rng.randint(300, 900) if m.key in _PET else rng.randint(600, 2400)
            if rng.random() < (0.25 if underused else 0.06):
                gap += rng.randint(2700, 6000)  # a real idle gap
            t = self._tick(m, end, gap)
        if slots >= 5:
            # a short (under-used) day keeps its usual end: the spare time becomes idle gaps
            # between patients, not an early finish
            close = dt.datetime.combine(self.day, dt.time(16)) + dt.timedelta(
                seconds=rng.randint(0, 7200)
            )
            end = self._spread(m, placed, end, close)
        if m.key == "millennium":
            first = min(self.studies_of(m.key), key=lambda s: s.start)
            first.series[0].tm_style = "hour"
            first.series[0].cases.append("tm_hour")
        return end

    def _spread(
        self, m: Machine, placed: list[list[Series]], end: dt.datetime, close: dt.datetime
    ) -> dt.datetime:
        """Push later blocks back at 1-3 random boundaries so that the day ends near ``close``."""
        slack = (close - end).total_seconds()
        if slack <= 600 or len(placed) < 2:
            return end
        step = 60 if m.tm_style == "min" else 1
        cuts = sorted(
            self.rng.sample(range(1, len(placed)), min(len(placed) - 1, self.rng.randint(1, 3)))
        )
        shares = [self.rng.random() for _ in cuts]
        shift = 0
        for i, block in enumerate(placed):
            if i in cuts:
                shift += int(slack * shares[cuts.index(i)] / sum(shares)) // step * step
            for series in block:
                series.times = [x + dt.timedelta(seconds=shift) for x in series.times]
        return end + dt.timedelta(seconds=shift)

    def studies_of(self, key: str) -> list[Study]:
        return [s for s in self.studies if s.machine == key and s.series]


# -- the day ------------------------------------------------------------------------------

_PET = ("petsiemens", "petge")
_SPECT = ("discovery670nm", "intevo")


def _type(m: Machine, label: str) -> StudyType:
    return next(st for st in m.types if st.label == label)


def plan_day(
    day: dt.date, seed: int, slots: dict[str, list[int]], machine_keys: list[str]
) -> DayPlan:
    """The whole day: every scanner's schedule plus each special case at least once."""
    p = DayPlanner(day, seed, slots)
    rng = p.rng
    machines = [cat.MACHINES[k] for k in machine_keys if k in cat.MACHINES]
    have = [m.key for m in machines]  # a list: set order would change with PYTHONHASHSEED
    spect = [k for k in _SPECT if k in have]
    pet = [k for k in _PET if k in have]
    forced: dict[str, list[_Block]] = {m.key: [] for m in machines}

    def study_of(key: str, st: StudyType, case: str | None = None) -> Study:
        s = p.new_study(key, rng.choice(st.descriptions))
        if case:
            s.cases.append(case)
        return s

    if spect:
        # a retake: 3-phase bone scan, early phase then late phase hours later (one UID)
        k = rng.choice(spect)
        st = _type(cat.MACHINES[k], "OS 3 PHASE")
        forced[k].append(_Block([(study_of(k, st, "retake"), st, 0)]))
        # ventilation then perfusion: two studies of one patient, merged in the truth
        k = rng.choice(spect)
        vent = study_of(k, cat.VENT, "vent_perf")
        perf = p.new_study(
            k,
            rng.choice(cat.PERF.descriptions),
            patient=(vent.patient_id, vent.patient_name, vent.birth_date, vent.sex),
        )
        perf.cases.append("vent_perf")
        forced[k].append(_Block([(vent, cat.VENT, 0), (perf, cat.PERF, 0)]))
        # another patient scanned between two series of one study (short pause, new take)
        k = rng.choice(spect)
        m = cat.MACHINES[k]
        st = _type(m, "OS 1 PHASE")
        a = study_of(k, st, "interleaved")
        b = study_of(k, cat.INTERLEAVED, "interleaved_other")
        first = StudyType(st.label, st.descriptions, (st.takes[0][:1],))
        second = StudyType(st.label, st.descriptions, (st.takes[0][1:],))
        forced[k].append(_Block([(a, first, 0), (b, cat.INTERLEAVED, 0), (a, second, 0)]))
    if pet:
        # the brain FDG series whose end is only in its description
        k = "petsiemens" if "petsiemens" in have else pet[0]
        st = _type(cat.MACHINES[k], "FDG CERV.")
        forced[k].append(_Block([(study_of(k, st), st, 0)]))
    # a description that matches no pattern of its machine: OTHER
    k = rng.choice([k for k in have if k != "millennium"] or have)
    st = _type(cat.MACHINES[k], "OTHER")
    forced[k].append(_Block([(study_of(k, st, "other_label"), st, 0)]))
    # a study without any InstitutionName, and one with several names (kept as "mixed")
    for case in ("no_institution", "mixed_institution"):
        k = rng.choice([k for k in have if k != "millennium"] or have)
        # several series, so that one other name still leaves an accepted one ("mixed")
        st = rng.choice(
            [t for t in cat.MACHINES[k].types if len(t.takes) == 1 and len(t.takes[0]) > 1]
        )
        s = study_of(k, st, case)
        if case == "no_institution":
            s.reason = Reason.NO_INSTITUTION
        forced[k].append(_Block([(s, st, 0)]))

    ends = {m.key: p.plan_machine(m, forced[m.key]) for m in machines}

    plain = [s for s in p.studies if not s.cases and s.reason is None and s.machine and s.series]
    rng.shuffle(plain)

    def take_plain(pred: Any) -> Study | None:
        for s in plain:
            if pred(s):
                plain.remove(s)
                return s
        return None

    broken_text = ("1O3O15", "N/A", "ERR")
    garble_first = day.toordinal() % 2 == 0  # missing / garbled alternate from day to day

    def series_of(s: Study, kind: str | tuple[str, ...]) -> list[Series]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [x for x in s.series if x.kind in kinds]

    # broken headers (a few % of series): no start, no end, NM without duration, no model
    s = take_plain(
        lambda s: s.machine in _PET and any(x.n_instances > 1 for x in series_of(s, "ct"))
    )
    if s:
        x = series_of(s, "ct")[0]
        x.broken[0] = rng.choice(broken_text) if garble_first else "missing"
        x.status, x.reason = "failed", Reason.NO_START
        x.cases.append("no_start_garbled" if garble_first else "no_start_missing")
        s.cases.append("broken")
    s = take_plain(lambda s: s.machine == "petge" and series_of(s, "pt"))
    if s:
        x = series_of(s, "pt")[0]
        x.broken[x.n_instances - 1] = "missing" if garble_first else rng.choice(broken_text)
        x.status, x.reason = "failed", Reason.NO_END
        x.cases.append("no_end_missing" if garble_first else "no_end_garbled")
        s.cases.append("broken")
    s = take_plain(
        lambda s: s.machine in _SPECT and len([x for x in s.series if x.modality == "NM"]) >= 2
    )
    if s:
        x = next(x for x in s.series if x.modality == "NM")
        x.nm_timing = "none"
        x.status, x.reason = "failed", Reason.NO_END
        x.cases = ["nm_no_duration"]
        s.cases.append("broken")
    s = take_plain(lambda s: s.machine in _SPECT and series_of(s, "ct"))
    if s:
        x = series_of(s, "ct")[0]
        x.model = None
        x.status, x.reason = "failed", Reason.NO_MACHINE
        x.cases.append("no_machine")
        s.cases.append("broken")
    # PET series whose instances are numbered against time (the rule swaps start and end)
    for s in [
        x for x in [take_plain(lambda s: s.machine == "petge" and series_of(s, "pt"))] if x
    ] + [s for s in plain if s.machine in _PET and series_of(s, "pt") and rng.random() < 0.05]:
        x = series_of(s, "pt")[-1]
        x.times.reverse()
        x.cases.append("reversed_instances")
    # a series sent twice (same times, new UID): only one counts
    s = take_plain(lambda s: s.machine == "petge")
    if s:
        src = series_of(s, "ct")[0]
        dup = p._series(
            s, cat.PET_GE, "CT", "ct", src.description, list(src.times), image_type=src.image_type
        )
        dup.cases.append("duplicate_series")
        src.cases.append("duplicate_series")
    # SeriesDate missing (AcquisitionDate present)
    s = take_plain(lambda s: s.machine in _PET + _SPECT and series_of(s, "ct"))
    if s:
        x = series_of(s, "ct")[0]
        x.series_date = False
        x.cases.append("series_date_missing")

    # derived series: fusions, MIPs, captures, SECONDARY, multi-instance NM
    kept = [
        s
        for s in p.studies
        if s.reason is None and s.machine and s.series and cat.MACHINES[s.machine].derived
    ]
    pet_kinds = ("fusion", "fused", "mip", "screen_capture", "protocol_capture", "secondary")
    nm_kinds = ("fusion", "screen_capture", "secondary", "nm_multi")
    for kind in (*pet_kinds, "nm_multi"):
        on_pet = kind in pet_kinds
        pool = [s for s in kept if (s.machine in _PET) == on_pet]
        if pool:
            _derive(p, rng.choice(pool), kind)
    for s in kept:
        for kind in pet_kinds if s.machine in _PET else nm_kinds:
            if rng.random() < 0.06:
                _derive(p, s, kind)

    # images from elsewhere: EXTRINSEQUE, another hospital, a phantom with a non-numeric id
    if "petge" in have:
        m = cat.PET_GE
        for case, desc, inst in (
            ("extrinseque", "EXTRINSEQUE", "CHUV"),
            (
                "other_institution",
                rng.choice(_type(m, "FDG STAND.").descriptions),
                rng.choice(cat.FOREIGN_INSTITUTIONS),
            ),
        ):
            s = p.new_study(None, desc)
            s.cases.append(case)
            s.reason = Reason.STUDY_DESCRIPTION if case == "extrinseque" else Reason.INSTITUTION
            t = dt.datetime.combine(day, dt.time(9)) + dt.timedelta(minutes=rng.randint(0, 360))
            p.add_take(
                s,
                m,
                (cat.P("topo", description="Scout"), cat.P("ct"), cat.P("pt", 900, 1200, "PET WB")),
                t,
            )
            for x in s.series:
                x.institution = inst
    if pet:
        m = cat.MACHINES[rng.choice(pet)]
        pid = rng.choice(cat.NON_NUMERIC_IDS)
        s = p.new_study(m.key, "QC Daily", patient=(pid, "QC^PHANTOM", "", "O"))
        s.cases.append("non_numeric_patient_id")
        s.reason = Reason.PATIENT_ID
        t = dt.datetime.combine(day, dt.time(7, 0)) + dt.timedelta(minutes=rng.randint(0, 10))
        p.add_take(s, m, (cat.P("pt", 300, 600, "QC Ge68"),), t)
    # a study imaged on two scanners whose models form no machine group ("mixed cases")
    if "discovery670nm" in have and "intevo" in have:
        s = p.new_study("discovery670nm", "Scinti osseuse 1 phase")
        s.machine = None  # not part of any scanner's schedule
        s.cases.append("mixed_cases")
        t = max(ends["discovery670nm"], ends["intevo"]) + dt.timedelta(minutes=rng.randint(15, 30))
        _, end = p.add_part(s, cat.D670, cat.P("spect", 600, 900, "SPECT Os"), t)
        p.add_part(
            s,
            cat.INTEVO,
            cat.P("ct", description="CT AC"),
            end + dt.timedelta(minutes=rng.randint(5, 10)),
        )

    # another patient's study whose console clock is off (or that was sent under the wrong
    # scanner): its one series starts in the pause between a PET study's first two series and
    # runs minutes into them. One scanner cannot image two patients at once: the PET study must
    # stay one take (DOMAIN §3.3), the overlap being a data-quality finding. Drawn from its own
    # random source, and after every other study, so the rest of the day is unchanged.
    s = take_plain(
        lambda s: (
            s.machine == "petge" and len({x.span() for x in s.series if x.status == "kept"}) >= 3
        )
    )
    if s:
        _overlapping_other(p, s, random.Random(f"overlap|{seed}|{day.isoformat()}"))

    # special institutions
    for s in p.studies:
        if "no_institution" in s.cases:
            for x in s.series:
                x.institution = None
        if "mixed_institution" in s.cases:
            s.series[0].institution = rng.choice(cat.FOREIGN_INSTITUTIONS)
    # one series without InstitutionName in a study whose other series carry an accepted one:
    # the study is kept, that series is stored and left out of the study (DOMAIN §3.1); the
    # one that ends the study, so that leaving it out shows in the study's end
    for s in p.studies:
        kept = [x for x in s.series if x.status == "kept"]
        if s.cases or s.reason is not None or not s.machine or len(kept) < 2:
            continue
        ends = sorted((x.span()[1] for x in kept), reverse=True)
        if ends[0] > ends[1]:
            last = next(x for x in kept if x.span()[1] == ends[0])
            last.institution = None
            last.cases.append("partial_institution")
            break
    # the TM value shapes that reach the files
    for s in p.studies:
        for x in s.series:
            style_case = {"frac": "tm_fraction", "min": "tm_minutes"}.get(x.tm_style)
            if style_case:
                x.cases.append(style_case)
            if x.content_time is None:
                x.content_time = (
                    x.span()[1] + dt.timedelta(seconds=rng.randint(30, 180))
                    if x.nm_timing != "none"
                    else x.times[0]
                )
    # the injections, from a random source of their own: the rest of the day is unchanged
    assign_injections(p.studies, day, seed)
    return DayPlan(day, seed, p.studies)


def _overlapping_other(p: DayPlanner, s: Study, rng: random.Random) -> None:
    """Add the "overlapping_other" study over ``s`` (see :func:`plan_day`)."""
    m = cat.MACHINES[s.machine or ""]
    kept = sorted({x.span() for x in s.series if x.status == "kept"})
    (_, first_end), (second_start, _) = kept[0], kept[1]
    while True:
        pid = str(rng.randint(10_000_000, 99_999_999))
        if pid not in p._patients:
            p._patients.add(pid)
            break
    patient = (pid, f"{rng.choice(cat.LAST_NAMES)}^{rng.choice(cat.FIRST_NAMES)}", "19700101", "F")
    other = p.new_study(m.key, rng.choice(_type(m, "FDG STAND.").descriptions), patient=patient)
    other.cases.append("overlapping_other")
    s.cases.append("overlapped")
    start = first_end + dt.timedelta(seconds=max(1, (second_start - first_end).seconds // 3))
    end = second_start + dt.timedelta(seconds=rng.randint(300, 600))
    n = 5
    times = [(start + (end - start) * i / (n - 1)).replace(microsecond=0) for i in range(n)]
    x = p._series(other, m, "PT", "pt", "PET WB", times)
    x.cases.append("overlapping_other")


def _derive(p: DayPlanner, s: Study, kind: str) -> None:
    """Add a derived series (reformat, fusion, capture...) made after the study's acquisitions."""
    rng = p.rng
    m = cat.MACHINES[s.machine or ""]
    desc, protocol, sop, itype, reason = cat.DERIVED[kind]
    src = [
        x
        for x in s.series
        if x.status == "kept" and x.kind in ("pt", "brain", "spect", "static", "wb", "dyn")
    ]
    if not src:
        return
    modality = src[-1].modality
    if modality == "NM" and kind == "fusion":
        desc = "Fusion SPECT-CT"
    if modality == "NM" and kind == "secondary":
        desc = "Recon OSEM AC"
    end = max(x.span()[1] for x in s.series if x.status == "kept")
    t = p._start(m, end + dt.timedelta(seconds=rng.randint(300, 1200)))
    # NM derived series other than nm_multi have one instance, so that one rule applies
    n = (
        rng.randint(2, 4)
        if kind == "nm_multi"
        else (1 if sop or modality == "NM" else rng.randint(1, 6))
    )
    x = p._series(
        s,
        m,
        modality,
        kind,
        desc,
        [t] * n,
        protocol=protocol or s.description,
        sop_class=sop,
        image_type=itype,
        nm_timing="plain" if modality == "NM" else None,
        nm_parts=[(1000, 1)] if modality == "NM" else [],
    )
    x.status, x.reason = "excluded", reason
    x.cases.append(kind)


#: Every special case of a day (``truth/cases.parquet``) and how it shows in the files.
CASES: dict[str, str] = {
    "retake": "3-phase bone scan (D670/Intevo): early dynamic+pool, then WB+SPECT+CT 2.5-3.5 h later, one StudyInstanceUID -> takes 1 and 2",
    "vent_perf": "'Ventilation TC'/'Ventilation' then 'Perfusion embolie' study, same patient/day/machine -> one VENT PERF. row (earlier study's uid/take, min start, max end)",
    "interleaved": "OS 1 PHASE: WB, then another patient's study, then SPECT+CT < 3540 s later -> takes 1 and 2",
    "interleaved_other": "the short 'GGL sein G' study of the other patient scanned in between",
    "overlapped": "a PET GE study that another patient's series overlaps (clock offset or wrong scanner) -> one take, foreign_overlaps > 0",
    "overlapping_other": "another patient's one-series PET GE study starting in the pause between that study's first two series and running minutes into them -> cuts nothing",
    "other_institution": "PET-CT study whose InstitutionName is another hospital -> excluded institution_not_accepted",
    "no_institution": "a normal study with no InstitutionName on any series -> excluded no_institution",
    "mixed_institution": "one series carries another hospital's name, the rest an accepted one -> kept ('mixed')",
    "partial_institution": "one series without InstitutionName, the others an accepted one -> study kept, that series stored but left out of the study (§3.1)",
    "extrinseque": "StudyDescription EXTRINSEQUE (imported images) -> excluded study_description_excluded",
    "non_numeric_patient_id": "'QC Daily' phantom at 07:00 on a PET with PatientID like PHANTOM_GE68 -> excluded patient_id_rejected",
    "fusion": "SeriesDescription 'Fusion PET-CT' / 'Fusion SPECT-CT' -> series_description_excluded",
    "fused": "SeriesDescription 'Fused Images' -> series_description_excluded",
    "mip": "SeriesDescription 'MIP PET' -> series_description_excluded",
    "screen_capture": "Secondary Capture 'Screen Capture' -> series_description_excluded",
    "protocol_capture": "Secondary Capture 'Rapport dosimetrie', ProtocolName SCREENCAPTURE -> protocol_excluded",
    "secondary": "'Recon AC 3D' / 'Recon OSEM AC' with ImageType DERIVED\\SECONDARY, timed after the study -> secondary_image_type",
    "nm_multi": "NM 'SPECT Recon OSEM' with 2-4 instances -> nm_multi_instance",
    "duplicate_series": "PET GE CT sent twice (new SeriesInstanceUID, same times): both kept, one study",
    "brain_fdg": "PT 'FDG Cerveau 10min' (Siemens) / 'FDG Cerveau 15min' (GE): every instance has the start time; end = start + minutes",
    "series_date_missing": "a CT without SeriesDate (AcquisitionDate present) -> kept",
    "tm_fraction": "Siemens consoles (PET Siemens, Intevo) write TM with microseconds '083015.123456'",
    "tm_minutes": "Millennium writes TM as 'HHMM'",
    "tm_hour": "the first Millennium series of the day starts 08:00 written '08'",
    "mixed_cases": "Tandem_Discovery_670 NM + Symbia Intevo 16 CT in one study, after both days end -> no group, not in the truth",
    "no_start_missing": "CT of a PET study: instance 1 without AcquisitionTime -> failed no_start",
    "no_start_garbled": "CT of a PET study: instance 1 AcquisitionTime like '1O3O15'/'N/A'/'ERR' -> failed no_start",
    "no_end_missing": "PET GE PT: last instance without AcquisitionTime -> failed no_end",
    "no_end_garbled": "PET GE PT: last instance AcquisitionTime garbled -> failed no_end",
    "nm_no_duration": "NM without Phase/Rotation sequences nor ActualFrameDuration -> failed no_end",
    "no_machine": "CT of a SPECT/CT study without ManufacturerModelName -> failed no_machine (study becomes _NoCT)",
    "reversed_instances": "PT whose instance 1 is the last bed in time -> start/end swapped",
    "nm_phase": "NM duration from PhaseInformationSequence (frame ms x NumberOfFramesInPhase)",
    "nm_rotation": "NM duration from RotationInformationSequence (frame ms x NumberOfFramesInRotation)",
    "nm_radial": "RotationInformationSequence without NumberOfFramesInRotation: count of RadialPosition",
    "nm_plain": "NM ActualFrameDuration x NumberOfFrames (statics, whole body)",
    "other_label": "a StudyDescription matching no pattern of its machine -> OTHER",
    "broken": "study-level tag of the studies holding one of the failed series above",
    "uptake_out_of_window": "FDG oncology study injected less than 55 or more than 75 min before its PET (EANM FDG v2.0 window)",
    "radiopharm_no_sequence": "PET study whose PT series carry no Radiopharmaceutical Information Sequence -> injection null, no_radiopharm_sequence (even days; the broken values alternate)",
    "radiopharm_empty_sequence": "the sequence present without item -> injection null, radiopharm_sequence_empty",
    "radiopharm_bad_time": "GE / Millennium: RadiopharmaceuticalStartTime like '1O3O15' / 'N/A' / '25:61:00', no DT -> injected_at null, injection_time_unparseable",
    "radiopharm_bad_datetime": "Siemens: RadiopharmaceuticalStartDateTime garbled ('2024O304...'), no TM -> injected_at null, injection_time_unparseable",
    "radiopharm_negative_dose": "RadionuclideTotalDose negative -> activity null, total_dose_not_positive",
    "radiopharm_missing_values": "an item without RadionuclideTotalDose nor RadionuclideCodeSequence -> activity and radionuclide null, radionuclide_missing; total_dose_missing",
    "radiopharm_absurd_dose": "a PET dose with six zeros too many -> activity null, total_dose_implausible",
    "radiopharm_garbled_dose": "RadionuclideTotalDose 'N/A' -> activity null, total_dose_unparseable",
    "radiopharm_nm_dose_in_bq": "an NM dose written in Bq (NM's unit is MBq) -> activity null, total_dose_implausible",
    "injection_after_scan": "injection time 2-15 min after the PET start (entry error) -> uptake negative, uptake_flag injection_after_scan",
    "injection_over_24h": "Siemens DT two days before the PET (date typed wrong) -> uptake over 48 h, uptake_flag injection_over_24h",
}

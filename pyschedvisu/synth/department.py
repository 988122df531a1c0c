"""Another department: the reference one's days, under the names another hospital uses.

The reference department (:mod:`pyschedvisu.synth.catalog`) is what the default config
describes. :data:`SEELAND` is the same scanners, patients, days and special cases under other
names: another institution, other scanner models (the two SPECT/CT cameras become two
identical ones, told apart only by StationName and DeviceSerialNumber), German study
descriptions. Nothing of it matches the default config: it is what a new user's PACS looks
like (``pyschedvisu discover`` is the way in). Derived series, acquisition series
descriptions, foreign hospitals and the EXTRINSEQUE / phantom markers keep their names: the
generic filters of the default config still apply to them.

:func:`relabel` applies a department to a planned day before it is written; the truth is
then computed from the relabelled plan, as for the reference department.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pyschedvisu.synth.plan import DayPlan


@dataclass(frozen=True)
class Department:
    """How a department names what the reference department does (reference name -> its own).

    Values not in a table keep their reference name.
    """

    name: str
    institutions: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # ManufacturerModelName
    manufacturers: dict[str, str] = field(default_factory=dict)  # by the new model name
    stations: dict[str, str] = field(default_factory=dict)  # StationName
    serials: dict[str, str] = field(default_factory=dict)  # DeviceSerialNumber
    descriptions: dict[str, str] = field(default_factory=dict)  # StudyDescription


def relabel(plan: DayPlan, department: Department | None) -> DayPlan:
    """``plan`` under ``department``'s names (the plan itself when None)."""
    if department is None:
        return plan
    d = department
    studies = []
    for study in plan.studies:
        series = []
        for s in study.series:
            model = d.models.get(s.model, s.model) if s.model is not None else None
            series.append(
                dataclasses.replace(
                    s,
                    model=model,
                    manufacturer=d.manufacturers.get(model or "", s.manufacturer),
                    institution=(
                        d.institutions.get(s.institution, s.institution)
                        if s.institution is not None
                        else None
                    ),
                    station=d.stations.get(s.station, s.station) if s.station else s.station,
                    serial=d.serials.get(s.serial, s.serial) if s.serial else s.serial,
                    # the ProtocolName of an acquisition is its study's description
                    protocol=d.descriptions.get(s.protocol, s.protocol)
                    if s.protocol == study.description
                    else s.protocol,
                    times=list(s.times),
                    cases=list(s.cases),
                )
            )
        studies.append(
            dataclasses.replace(
                study,
                description=d.descriptions.get(study.description, study.description),
                series=series,
                cases=list(study.cases),
            )
        )
    return DayPlan(plan.day, plan.seed, studies)


#: Kantonsspital Seeland: two PET/CT, two identical SPECT/CT, one gamma camera.
SEELAND = Department(
    name="seeland",
    institutions={
        "Centre Hospitalier Universitaire Vaudois": "Kantonsspital Seeland",
        "PETCT CHUV": "KS Seeland PET-CT",
        "Medecine Nucleaire CHUV Lausanne": "Kantonsspital Seeland Nuklearmedizin",
        "Nuclear Medecine,CHUV": "Nuklearmedizin, KS Seeland",
        "CHUV": "KSSeeland",
    },
    models={
        "Biograph64": "Vereos CT",
        "Biograph64_Vision 600": "Vereos PET",
        "Discovery 690": "Discovery MI",
        # the two SPECT/CT cameras: one model, two scanners
        "Tandem_Discovery_670": "NM/CT 870 DR",
        "BrightSpeed": "Optima CT540",
        "Encore2": "NM/CT 870 DR",
        "Symbia Intevo 16": "Optima CT540",
        "MILLENNIUM MPR": "Infinia",
    },
    manufacturers={
        "Vereos CT": "Philips",
        "Vereos PET": "Philips",
        "Discovery MI": "GE Healthcare",
        "NM/CT 870 DR": "GE Healthcare",
        "Optima CT540": "GE Healthcare",
        "Infinia": "GE Healthcare",
    },
    stations={
        "MN-PETCT-VISION": "NUK-PET1",
        "MN-PETCT-D690": "NUK-PET2",
        "MN-SPECT-D670": "NUK-SPECT1",
        "MN-SPECT-INTEVO": "NUK-SPECT2",
        "MN-MILLENNIUM": "NUK-INFINIA",
    },
    serials={
        "60451": "PH-VER-0117",
        "690PET1207": "GE-DMI-3321",
        "670NM0433": "GE-870-1048",
        "1601": "GE-870-1102",
        "MPR2208": "GE-INF-0093",
    },
    descriptions={
        # PET Siemens -> Vereos
        "PET^1_PET_FDG_Tronc_Flow (Adult)": "PET/CT FDG Rumpf",
        "PET^1_PET_FDG_Tronc_Flow_OncoFreeze (Adult)": "PET/CT FDG Rumpf Atemgating",
        "Specials^1_PET_FDG_Tronc_CT (Adult)": "PET/CT FDG Rumpf mit KM-CT",
        "PET^1_PET_FDG_Corps_entier_Flow (Adult)": "PET/CT FDG Ganzkoerper",
        "PET^1_PET_FDG_WB_Flow (Child)": "PET/CT FDG Ganzkoerper Kind",
        "PET^2_PET_Rb82_Coeur (Adult)": "PET/CT Rb82 Myokard",
        "PET^1_PET_FDG_Tronc_ORL_Flow (Adult)": "PET/CT FDG Rumpf HNO",
        "PET^3_PET_Ga68_PSMA_Tronc_Flow (Adult)": "PET/CT Ga68-PSMA",
        "PET^1_PET_FDG_Coeur_Thorax (Adult)": "PET/CT FDG Herz Sarkoidose",
        "PET^1_PET_FDG_Cerveau (Adult)": "PET/CT FDG Hirn",
        "PET^7_PET_TAU_Cerveau (Adult)": "PET/CT Tau Hirn",
        "PET^3_PET_Ga68_DOTATOC_Tronc (Adult)": "PET/CT Ga68-DOTATOC",
        "PET^3_PET_Ga68_DOTATATE_Tronc_Flow (Adult)": "PET/CT Ga68-DOTATATE",
        "PET^Recherche_Etude_Clinique": "PET/CT Studie",
        "PET^9_PET_FLUCICLOVINE (Adult)": "PET/CT Fluciclovin",
        # PET GE -> Discovery MI
        "PET-CT FDG Tronc": "FDG PET/CT Rumpf",
        "PET CT Tronc": "PET CT Rumpf Standard",
        "E1 PET-CT FDG Tronc": "E1 FDG PET/CT Rumpf",
        "PET-CT FDG WB": "FDG PET/CT Ganzkoerper",
        "PET-CT FDG Corps entier": "FDG PET/CT Ganzkoerper lang",
        "PET-CT Rb82 Coeur": "Rb82 PET/CT Myokard",
        "PET-CT FDG Tronc ORL": "FDG PET/CT Rumpf HNO",
        "PET-CT G PSMA Tronc": "PSMA PET/CT Rumpf",
        "PET-CT FDG Coeur Thorax": "FDG PET/CT Herz Thorax",
        "PET-CT FDG Cerveau": "FDG PET/CT Hirn",
        "PET-CT FET Cerveau": "FET PET/CT Hirn",
        "PET-CT G DOTA Tronc": "DOTA PET/CT Rumpf",
        "PET-CT Recherche": "PET/CT Forschung",
        "PET-CT Choline": "Cholin PET/CT",
        # the SPECT/CT cameras
        "OS 3 phases": "Skelettszintigraphie 3-Phasen",
        "Scinti osseuse 3 phases": "Skelett 3-Phasen",
        "Scintigraphie 3 phases": "Skelett Dreiphasen",
        "OS 3 phase": "3-Phasen-Skelett",
        "OS 1 phase": "Skelettszintigraphie",
        "OS 1 phase AC": "Skelettszintigraphie SPECT/CT",
        "Scinti osseuse 1 phase": "Skelett Spaetphase",
        "GGL": "Sentinel",
        "GGL sein D": "Sentinel Mamma rechts",
        "GGL sein G": "Sentinel Mamma links",
        "GGL melanome": "Sentinel Melanom",
        "GGL gyneco": "Sentinel gynaekologisch",
        "Vidange oeuf": "Magenentleerung",
        "Perfusion pre-op": "Lungenperfusion praeoperativ",
        "Lymphographie": "Lymphszintigraphie",
        "MAA foie": "MAA Leber",
        "Parathyroide": "Nebenschilddruese",
        "Scintigraphie myocardique": "Myokardszintigraphie",
        "Scinti cerebrale": "Hirnperfusion",
        "PSMA Lu177": "Lu177-PSMA Therapiekontrolle",
        "177Lu controle post-traitement": "Lu177 Posttherapie",
        "DaTSCAN": "DaTSCAN SPECT",
        "Y90 microspheres": "Y90 SIRT Bremsstrahlung",
        "Hepatobiliaire Q": "Hepatobiliaere Sequenz",
        "Scintigraphie thyroidienne": "Schilddruese Tc99m",
        "Octreoscan": "Octreotid Szintigraphie",
        "Ventilation TC": "Lungenventilation Technegas",
        "Ventilation": "Lungenventilation",
        "Perfusion embolie": "Lungenperfusion Embolie",
        # Millennium -> Infinia
        "HIPP post": "Nierenfunktion Hippuran",
        "Scinti renale dynamique": "Nierenszintigraphie dynamisch",
        "MAG3 post": "MAG3 Niere",
        "STD MAG3": "MAG3 Standard",
        "Capsule I123 uptake": "I123 Uptake Kapsel",
        "Thyroide I123 uptake": "Schilddruese I123 Uptake",
        "Thyroide Tc99 uptake": "Schilddruese Tc99 Uptake",
        "Scintigraphie parathyroidienne": "Nebenschilddruese Szintigraphie",
        "PTHY pinhole": "Nebenschilddruese Pinhole",
        "BDF": "Knochendichte",
        "Scintigraphie thyroide MIBI": "Schilddruese MIBI",
        "Cisternographie": "Zisternographie",
        "Scinti glandes salivaires": "Speicheldruesen",
    },
)

#: Departments by the name ``pyschedvisu synth --department`` takes (None: the reference one).
DEPARTMENTS: dict[str, Department | None] = {"reference": None, "seeland": SEELAND}

"""What the reference department does: scanners, model names, study types and their series.

Every StudyDescription below minifies to a pattern of its label in the reference config
(``tests/test_synth.py`` checks it); the ``OTHER`` ones match no pattern on purpose.
Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
PT_SOP = "1.2.840.10008.5.1.4.1.1.128"
NM_SOP = "1.2.840.10008.5.1.4.1.1.20"
SC_SOP = "1.2.840.10008.5.1.4.1.1.7"
SOP_OF_MODALITY = {"CT": CT_SOP, "PT": PT_SOP, "NM": NM_SOP}


@dataclass(frozen=True)
class Part:
    """One acquisition of a study type.

    kind: ``topo`` (CT scout, 1 instance), ``ct``, ``pt`` (multi-bed PET), ``brain`` (PET whose
    description carries its minutes), ``static`` / ``wb`` (NM, frame duration × frames),
    ``dyn`` (NM, PhaseInformationSequence), ``spect`` (NM, RotationInformationSequence).
    """

    kind: str
    lo: int = 0  # duration range (s); ignored by topo / ct
    hi: int = 0
    description: str = ""


@dataclass(frozen=True)
class StudyType:
    label: str  # the label the descriptions are meant to get ("OTHER" = none)
    descriptions: tuple[str, ...]
    takes: tuple[tuple[Part, ...], ...]  # several takes = a retake hours later
    weight: int = 1
    delay: tuple[int, int] = (7200, 12600)  # between takes (s)


@dataclass(frozen=True)
class Machine:
    key: str  # minified display machine name
    name: str  # display name
    manufacturer: str
    models: dict[str, str]  # modality -> ManufacturerModelName
    institution: str
    tm_style: str  # how its consoles write TM values: full | frac | min
    types: tuple[StudyType, ...] = field(default=())
    derived: bool = True  # produces fusions / MIPs / captures
    station: str = ""  # StationName of its consoles
    serial: str = ""  # DeviceSerialNumber


def P(kind: str, lo: int = 0, hi: int = 0, description: str = "") -> Part:
    """Shorthand for a :class:`Part`."""
    return Part(kind, lo, hi, description)


_PET_S = (P("topo"), P("ct"))
PET_SIEMENS = Machine(
    key="petsiemens",
    name="PET Siemens",
    manufacturer="SIEMENS",
    models={"CT": "Biograph64", "PT": "Biograph64_Vision 600"},
    institution="Centre Hospitalier Universitaire Vaudois",
    station="MN-PETCT-VISION",
    serial="60451",
    tm_style="frac",
    types=(
        StudyType(
            "FDG STAND.",
            (
                "PET^1_PET_FDG_Tronc_Flow (Adult)",
                "PET^1_PET_FDG_Tronc_Flow_OncoFreeze (Adult)",
                "Specials^1_PET_FDG_Tronc_CT (Adult)",
            ),
            ((*_PET_S, P("pt", 720, 1200, "PET AC Tronc")),),
            40,
        ),
        StudyType(
            "FDG CORPS",
            ("PET^1_PET_FDG_Corps_entier_Flow (Adult)", "PET^1_PET_FDG_WB_Flow (Child)"),
            ((*_PET_S, P("pt", 1200, 1800, "PET AC Corps entier")),),
            10,
        ),
        StudyType(
            "RB82 COEUR",
            ("PET^2_PET_Rb82_Coeur (Adult)",),
            ((*_PET_S, P("pt", 360, 480, "PET Rb82 Repos"), P("pt", 360, 480, "PET Rb82 Stress")),),
            6,
        ),
        StudyType(
            "FDG ORL",
            ("PET^1_PET_FDG_Tronc_ORL_Flow (Adult)",),
            ((*_PET_S, P("pt", 900, 1200, "PET AC Tronc"), P("pt", 300, 480, "PET AC ORL")),),
            8,
        ),
        StudyType(
            "GA68 PSMA",
            ("PET^3_PET_Ga68_PSMA_Tronc_Flow (Adult)",),
            ((*_PET_S, P("pt", 900, 1320, "PET AC PSMA")),),
            8,
        ),
        StudyType(
            "SARCOIDOSE",
            ("PET^1_PET_FDG_Coeur_Thorax (Adult)",),
            ((*_PET_S, P("pt", 600, 900, "PET AC Coeur")),),
            4,
        ),
        StudyType(
            "FDG CERV.",
            ("PET^1_PET_FDG_Cerveau (Adult)",),
            ((*_PET_S, P("brain", 600, 600, "FDG Cerveau 10min")),),
            4,
        ),
        StudyType(
            "TAU CERV.",
            ("PET^7_PET_TAU_Cerveau (Adult)",),
            ((*_PET_S, P("pt", 1200, 1200, "PET TAU Cerveau")),),
            2,
        ),
        StudyType(
            "GA68 DOTA",
            ("PET^3_PET_Ga68_DOTATOC_Tronc (Adult)", "PET^3_PET_Ga68_DOTATATE_Tronc_Flow (Adult)"),
            ((*_PET_S, P("pt", 900, 1200, "PET AC DOTA")),),
            6,
        ),
        StudyType(
            "OTHER",
            ("PET^Recherche_Etude_Clinique", "PET^9_PET_FLUCICLOVINE (Adult)"),
            ((*_PET_S, P("pt", 900, 1500, "PET AC")),),
            3,
        ),
    ),
)

_PET_G = (P("topo", description="Scout"), P("ct", description="CT WB 3.75mm"))
PET_GE = Machine(
    key="petge",
    name="PET GE",
    manufacturer="GE MEDICAL SYSTEMS",
    models={"CT": "Discovery 690", "PT": "Discovery 690"},
    institution="PETCT CHUV",
    station="MN-PETCT-D690",
    serial="690PET1207",
    tm_style="full",
    types=(
        StudyType(
            "FDG STAND.",
            ("PET-CT FDG Tronc", "PET CT Tronc", "E1 PET-CT FDG Tronc"),
            ((*_PET_G, P("pt", 720, 1200, "PET WB")),),
            40,
        ),
        StudyType(
            "FDG CORPS",
            ("PET-CT FDG WB", "PET-CT FDG Corps entier"),
            ((*_PET_G, P("pt", 1200, 1800, "PET WB")),),
            10,
        ),
        StudyType(
            "RB82 COEUR",
            ("PET-CT Rb82 Coeur",),
            ((*_PET_G, P("pt", 360, 480, "PET Rest"), P("pt", 360, 480, "PET Stress")),),
            6,
        ),
        StudyType(
            "FDG ORL",
            ("PET-CT FDG Tronc ORL",),
            ((*_PET_G, P("pt", 900, 1200, "PET WB"), P("pt", 300, 480, "PET ORL")),),
            8,
        ),
        StudyType(
            "GA68 PSMA", ("PET-CT G PSMA Tronc",), ((*_PET_G, P("pt", 900, 1320, "PET WB")),), 8
        ),
        StudyType(
            "SARCOIDOSE",
            ("PET-CT FDG Coeur Thorax",),
            ((*_PET_G, P("pt", 600, 900, "PET Coeur")),),
            4,
        ),
        StudyType(
            "FDG CERV.",
            ("PET-CT FDG Cerveau",),
            ((*_PET_G, P("brain", 900, 900, "FDG Cerveau 15min")),),
            3,
        ),
        StudyType(
            "FET CERV.", ("PET-CT FET Cerveau",), ((*_PET_G, P("pt", 1200, 1200, "PET Brain")),), 3
        ),
        StudyType("GDOTA", ("PET-CT G DOTA Tronc",), ((*_PET_G, P("pt", 900, 1200, "PET WB")),), 5),
        StudyType(
            "OTHER",
            ("PET-CT Recherche", "PET-CT Choline"),
            ((*_PET_G, P("pt", 900, 1500, "PET WB")),),
            3,
        ),
    ),
)

D670 = Machine(
    key="discovery670nm",
    name="Discovery 670 NM",
    manufacturer="GE MEDICAL SYSTEMS",
    models={"NM": "Tandem_Discovery_670", "CT": "BrightSpeed"},
    institution="Medecine Nucleaire CHUV Lausanne",
    station="MN-SPECT-D670",
    serial="670NM0433",
    tm_style="full",
    types=(
        StudyType(
            "OS 3 PHASE",
            ("OS 3 phases", "Scinti osseuse 3 phases"),
            (
                (P("dyn", 300, 420, "Flow"), P("static", 300, 420, "Pool")),
                (
                    P("wb", 900, 1200, "WB Ant Post"),
                    P("spect", 720, 1080, "SPECT Os"),
                    P("ct", description="CT Low Dose"),
                ),
            ),
            10,
            (9000, 12600),
        ),
        StudyType(
            "OS 1 PHASE",
            ("OS 1 phase", "Scinti osseuse 1 phase"),
            (
                (
                    P("wb", 900, 1200, "WB Ant Post"),
                    P("spect", 720, 1080, "SPECT Os"),
                    P("ct", description="CT Low Dose"),
                ),
            ),
            12,
        ),
        StudyType(
            "GGL",
            ("GGL sein D", "GGL sein G", "GGL melanome"),
            (
                (
                    P("static", 300, 420, "Statique Ant"),
                    P("spect", 600, 900, "SPECT GGL"),
                    P("ct", description="CT Low Dose"),
                ),
            ),
            6,
        ),
        StudyType("VIDANGE", ("Vidange oeuf",), ((P("dyn", 2700, 3300, "Vidange gastrique"),),), 3),
        StudyType(
            "PERFPREOP",
            ("Perfusion pre-op",),
            ((P("static", 240, 360, "Perfusion Ant"), P("static", 240, 360, "Perfusion Post")),),
            3,
        ),
        StudyType(
            "LYMPHOGRA.",
            ("Lymphographie",),
            (
                (P("dyn", 900, 1200, "Lympho dynamique"),),
                (
                    P("static", 300, 600, "Statique tardive"),
                    P("spect", 600, 900, "SPECT Lympho"),
                    P("ct", description="CT Low Dose"),
                ),
            ),
            3,
        ),
        StudyType(
            "MAA SIRT",
            ("MAA foie",),
            (
                (
                    P("static", 300, 420, "Statique Ant"),
                    P("spect", 720, 900, "SPECT Foie"),
                    P("ct", description="CT Low Dose"),
                ),
            ),
            3,
        ),
        StudyType(
            "PARATHYRO",
            ("Parathyroide",),
            (
                (
                    P("static", 600, 600, "Cou precoce"),
                    P("spect", 600, 900, "SPECT Cou"),
                    P("ct", description="CT Low Dose"),
                ),
                (P("static", 600, 600, "Cou tardif"),),
            ),
            3,
            (5400, 9000),
        ),
        StudyType(
            "OTHER",
            ("Scintigraphie myocardique", "Scinti cerebrale"),
            ((P("spect", 900, 1200, "SPECT"), P("ct", description="CT Low Dose")),),
            3,
        ),
    ),
)

INTEVO = Machine(
    key="intevo",
    name="Intevo",
    manufacturer="SIEMENS",
    models={"NM": "Encore2", "CT": "Symbia Intevo 16"},
    institution="Nuclear Medecine,CHUV",
    station="MN-SPECT-INTEVO",
    serial="1601",
    tm_style="frac",
    types=(
        StudyType(
            "OS 3 PHASE",
            ("Scintigraphie 3 phases", "OS 3 phase"),
            (
                (P("dyn", 300, 420, "Flow"), P("static", 300, 420, "Pool")),
                (
                    P("wb", 900, 1200, "WB Ant Post"),
                    P("spect", 720, 1080, "SPECT Os"),
                    P("ct", description="CT AC"),
                ),
            ),
            8,
            (9000, 12600),
        ),
        StudyType(
            "OS 1 PHASE",
            ("OS 1 phase AC", "Scinti osseuse 1 phase"),
            (
                (
                    P("wb", 900, 1200, "WB Ant Post"),
                    P("spect", 720, 1080, "SPECT Os"),
                    P("ct", description="CT AC"),
                ),
            ),
            10,
        ),
        StudyType(
            "GGL",
            ("GGL", "GGL melanome", "GGL gyneco"),
            (
                (
                    P("static", 300, 420, "Statique Ant"),
                    P("spect", 600, 900, "SPECT GGL"),
                    P("ct", description="CT AC"),
                ),
            ),
            5,
        ),
        StudyType(
            "PSMA",
            ("PSMA Lu177", "177Lu controle post-traitement"),
            (
                (
                    P("wb", 1200, 1500, "WB Ant Post"),
                    P("spect", 900, 1200, "SPECT Lu177"),
                    P("ct", description="CT AC"),
                ),
            ),
            5,
        ),
        StudyType(
            "DATSCAN",
            ("DaTSCAN",),
            ((P("spect", 1800, 1800, "SPECT DaT"), P("ct", description="CT AC")),),
            4,
        ),
        StudyType(
            "Y90 SIRT",
            ("Y90 microspheres",),
            ((P("spect", 900, 1200, "SPECT Y90"), P("ct", description="CT AC")),),
            2,
        ),
        StudyType(
            "MAA SIRT",
            ("MAA foie",),
            (
                (
                    P("static", 300, 420, "Statique Ant"),
                    P("spect", 720, 900, "SPECT Foie"),
                    P("ct", description="CT AC"),
                ),
            ),
            3,
        ),
        StudyType(
            "HEPATOBIL.",
            ("Hepatobiliaire Q",),
            ((P("dyn", 3000, 3600, "Dynamique hepatique"),),),
            2,
        ),
        StudyType(
            "OTHER",
            ("Scintigraphie thyroidienne", "Octreoscan"),
            ((P("static", 600, 900, "Statique"),),),
            3,
        ),
    ),
)

MILLENNIUM = Machine(
    key="millennium",
    name="Millennium",
    manufacturer="GE MEDICAL SYSTEMS",
    models={"NM": "MILLENNIUM MPR"},
    institution="CHUV",
    station="MN-MILLENNIUM",
    serial="MPR2208",
    tm_style="min",
    derived=False,
    types=(
        StudyType(
            "HIPP",
            ("HIPP post", "Scinti renale dynamique"),
            ((P("dyn", 1800, 1800, "Renogramme"),),),
            6,
        ),
        StudyType(
            "MAG3",
            ("MAG3 post", "STD MAG3"),
            ((P("dyn", 1800, 1800, "Renogramme"), P("static", 120, 120, "Post miction")),),
            5,
        ),
        StudyType(
            "CAPS. I123",
            ("Capsule I123 uptake", "Thyroide I123 uptake"),
            ((P("static", 600, 600, "Thyroide 4h"),), (P("static", 600, 600, "Thyroide 24h"),)),
            3,
            (10800, 14400),
        ),
        StudyType(
            "THYR. TC99", ("Thyroide Tc99 uptake",), ((P("static", 600, 600, "Thyroide"),),), 4
        ),
        StudyType(
            "PARATHYRO",
            ("Scintigraphie parathyroidienne", "PTHY pinhole"),
            ((P("static", 600, 600, "Cou precoce"),), (P("static", 600, 600, "Cou tardif"),)),
            2,
            (5400, 9000),
        ),
        StudyType(
            "GGL",
            ("GGL", "GGL sein G"),
            ((P("static", 300, 600, "Statique Ant"), P("static", 300, 600, "Statique Lat")),),
            2,
        ),
        StudyType("BDF", ("BDF",), ((P("static", 900, 900, "Statique"),),), 2),
        StudyType(
            "THYRO MIBI",
            ("Scintigraphie thyroide MIBI",),
            ((P("static", 600, 600, "Thyroide MIBI"),),),
            2,
        ),
        StudyType(
            "OTHER",
            ("Cisternographie", "Scinti glandes salivaires"),
            ((P("static", 600, 900, "Statique"),),),
            2,
        ),
    ),
)

MACHINES: dict[str, Machine] = {m.key: m for m in (PET_SIEMENS, PET_GE, D670, INTEVO, MILLENNIUM)}

#: Ventilation + perfusion: two studies of one patient (SPECT/CT cameras).
VENT = StudyType(
    "VENT PERF.", ("Ventilation TC", "Ventilation"), ((P("spect", 600, 720, "SPECT Ventilation"),),)
)
PERF = StudyType(
    "VENT PERF.",
    ("Perfusion embolie",),
    ((P("spect", 600, 720, "SPECT Perfusion"), P("ct", description="CT Low Dose")),),
)
#: The short study of another patient scanned between two series of one study.
INTERLEAVED = StudyType("GGL", ("GGL sein G",), ((P("static", 480, 720, "Statique Ant"),),))

#: Names that normalise into the accepted list, and others (other hospitals).
FOREIGN_INSTITUTIONS = (
    "Hopital Riviera-Chablais",
    "Clinique de La Source",
    "Hopital de Morges",
    "Hirslanden Bois-Cerf",
)
#: PatientIDs of test / phantom studies (not all digits).
NON_NUMERIC_IDS = ("PHANTOM_GE68", "QC-DAILY", "TEST123A", "CTQ_WATER", "P00A17")

#: Derived series: SeriesDescription, ProtocolName (None = the study's), SOP class, ImageType, reason.
DERIVED = {
    "fusion": (
        "Fusion PET-CT",
        None,
        None,
        ("DERIVED", "PRIMARY", "FUSION"),
        "series_description_excluded",
    ),
    "fused": (
        "Fused Images",
        None,
        None,
        ("DERIVED", "PRIMARY", "FUSION"),
        "series_description_excluded",
    ),
    "mip": ("MIP PET", None, None, ("DERIVED", "PRIMARY", "MIP"), "series_description_excluded"),
    "screen_capture": (
        "Screen Capture",
        None,
        SC_SOP,
        ("DERIVED", "PRIMARY"),
        "series_description_excluded",
    ),
    "protocol_capture": (
        "Rapport dosimetrie",
        "SCREENCAPTURE",
        SC_SOP,
        ("DERIVED", "PRIMARY"),
        "protocol_excluded",
    ),
    "secondary": ("Recon AC 3D", None, None, ("DERIVED", "SECONDARY"), "secondary_image_type"),
    "nm_multi": (
        "SPECT Recon OSEM",
        None,
        None,
        ("ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"),
        "nm_multi_instance",
    ),
}

FIRST_NAMES = (
    "JEAN",
    "MARIE",
    "LUC",
    "ANNE",
    "PIERRE",
    "SOPHIE",
    "MARC",
    "CLAIRE",
    "PAUL",
    "JULIE",
    "NICOLAS",
    "LAURA",
)
LAST_NAMES = (
    "MULLER",
    "FAVRE",
    "ROCHAT",
    "BONVIN",
    "MEYER",
    "PERRET",
    "GIRARD",
    "CHEVALLEY",
    "DUBOIS",
    "MORAND",
    "BLANC",
    "JACCARD",
)

"""Reference department (CHUV nuclear medicine, 2019-2021): the defaults of the config."""

from __future__ import annotations

MACHINES: dict[str, list[str]] = {
    "PET Siemens": ["biograph64", "biograph64vision600"],
    "PET Siemens_NoCT": ["biograph64vision600"],
    "PET GE": ["discovery690"],
    "Discovery 670 NM": ["brightspeed", "tandemdiscovery670"],
    "Discovery 670 NM_NoCT": ["tandemdiscovery670"],
    "Millennium": ["millenniummpr"],
    "Intevo": ["encore2", "symbiaintevo16"],
    "Intevo_NoCT": ["encore2"],
}

ACCEPTED_INSTITUTIONS = [
    "centrehospitalieruniversitairevaudois",
    "medecinenucleairechuvlausanne",
    "radiologiechuv",
    "petctchuv",
    "chuv",
    "nuclearmedecine,chuv",
    "mixed",
]

SERIES_DESCRIPTION_EXCLUDE = [
    ".+statistics$",
    ".+report$",
    ".+results$",
    ".+protocol$",
    "^exported series$",
    "^protocole patient$",
    ".+SUV5$",
    ".+summary$",
    "^post_motcorr$",
    "^enhancement curve$",
    "^snapshots$",
    ".+sub-flt.+",
    "^results.*",
    "^axial fuse$",
    "^f?f[uis][usx]ii?on.*",
    ".+fusion +(coro|sag|trans|ax)$",
    ".+ fusion$",
    "^dynamicsc.*",
    "^static$",
    "^processed images.*",
    "^4DM.+",
    ".+   imar$",
    "^fused.+",
    "^reformatted$",
    "^transaxial.+",
    ".+transaxials$",
    ".+_trans vue post$",
    "^sagitals?$",
    ".*axial( fuse)?d?$",
    "^coronal$",
    "^coronales fusion 2$",
    ".+fusion (axial|coronal)$",
    "^compact.+",
    "^mip.*",
    "^mpr[\\. ].*",
    "^defaultseries$",
    "^save[_ ]screens$",
    "^saved[_ ]images$",
    "^screen[_ ]capture.*",
    "^key[_ ]images$",
    "^aw electronic film$",
    "^images medrad intego$",
    "^(cor|coro|sag) (std|os)$",
]

SERIES_PROTOCOL_EXCLUDE = [
    "SCREENCAPTURE",
    "SCREENCAPTURES",
    "Shunt_Foie_PoumonNEW",
    "Volumetrix MI",
]
STUDY_DESCRIPTION_EXCLUDE = ["EXTRINSEQUE"]

_VENT_PERF = ["ventilationtc", "perfusionembolie", "ventilation", "ventilationtcperfusionembolie"]

DESCRIPTIONS: dict[str, dict[str, list[str]]] = {
    "discovery670nm": {
        "OS 3 PHASE": ["os3phases", "os3phase", "scintiosseuse3phases", "scintiosseuse3ph"],
        "OS 1 PHASE": ["os1phase", "scintiosseuse1phase"],
        "GGL": [
            "gglseind",
            "gglseing",
            "gglseins",
            "gglmelanome",
            "gglgyneco",
            "gglseinbilat",
            "gglseinbilateral",
        ],
        "VIDANGE": ["vidangeoeuf"],
        "VENT PERF.": list(_VENT_PERF),
        "PERFPREOP": ["perfusionpreop"],
        "LYMPHOGRA.": ["lymphographie"],
        "MAA SIRT": ["maafoie"],
        "PARATHYRO": ["parathyroide"],
    },
    "intevo": {
        "OS 3 PHASE": ["os3phases", "os3phase", "scintiosseuse3phases", "scintigraphie3phases"],
        "OS 1 PHASE": ["os1phase", "scintiosseuse1phase", "os1phaseac"],
        "GGL": [
            "gglseind",
            "gglseing",
            "gglseins",
            "gglseinsbilat",
            "gglmelanome",
            "ggl",
            "gglgyneco",
        ],
        "PSMA": ["psmalu177", "177lucontroleposttraitement", "lu177", "177lucontrole"],
        "VENT PERF.": list(_VENT_PERF),
        "DATSCAN": ["datscan"],
        "Y90 SIRT": ["y90microspheres"],
        "MAA SIRT": ["maafoie"],
        "HEPATOBIL.": ["hepatobiliaireq"],
    },
    "millennium": {
        "HIPP": ["hipppost", "hippant", "scintirenaledynamique", "stdhipp"],
        "MAG3": ["mag3post", "mag3ant", "stdmag3"],
        "CAPS. I123": ["capsulei123uptake", "thyroidei123uptake"],
        "THYR. TC99": ["thyroidetc99uptake"],
        "PARATHYRO": ["pthypinhole", "scintigraphieparathyroidienne"],
        "GGL": ["ggl", "glseind", "gglseing", "gglseins", "gglgyneco", "gglmelanome"],
        "BDF": ["bdf"],
        "THYRO MIBI": ["scintigraphiethyroidemibi", "thyroidemibietudemarie"],
    },
    "petge": {
        "FDG STAND.": [
            "petcttronc",
            "e1petcttronc",
            "petctfdgtronc",
            "petctfdgtroncct",
            "e1petctfdgtronc",
            "petcttronctronc",
        ],
        "FDG CORPS": [
            "petctfdgwb",
            "petctfdgwbct",
            "e1petctfdgwb",
            "petctfdgcorpsentie",
            "petctfdgcorpsentier",
            "petctcorpsentier",
        ],
        "RB82 COEUR": ["petctrb82coeur", "petctcoeur"],
        "FDG ORL": ["petctfdgtroncorl", "petctfdgtroncorlct", "petctfdgwborlct", "petctfdgwborl"],
        "GA68 PSMA": ["pet3petga68psmatroncflowadult", "petctgpsmatronc"],
        "SARCOIDOSE": [
            "petctfdgcoeurtronc",
            "petctfdgcoeurthorax",
            "petctfdgcoeurtho",
            "petctfdgcoeurthora",
        ],
        "FDG CERV.": ["petctfdgcerveau", "petctcerveau"],
        "FET CERV.": ["petctfetcerveau", "pet5petfetcerveau"],
        "GDOTA": [
            "petctgdotatronc",
            "petctgdotatroncorl",
            "petctgdotacoeur",
            "petctgdotatroncct",
            "petctgdotcoeurtron",
        ],
    },
    "petsiemens": {
        "FDG STAND.": [
            "pet1petfdgtroncflowadult",
            "pet1petfdgtroncflowchild",
            "pet1petfdgtroncflow3minadult",
            "pet1petfdgtroncflowoncofreezeinspiriumadulte",
            "pet1petfdgtroncflowoncofreezeinspiriumadult",
            "pet1petfdgtroncflowoncofreeze3minadult",
            "pet1petfdgtroncflowoncofreezeadult",
            "specials1petfdgtroncctadult",
            "specials1petfdgtronconcofreezectadult",
        ],
        "FDG CORPS": [
            "pet1petfdgcorpsentierflowadult",
            "pet1petfdgcorpsentierflowoncofreeze3minadult",
            "pet1petfdgwbflowchild",
            "pet1petfdgcorpsentierflowoncofreezeinspiadult",
            "pet1petfdgcorpsentierflowoncofreezeadult",
            "specials1petfdgwbctadult",
        ],
        "RB82 COEUR": [
            "pet2petrb82coeuradult",
            "pet2petrb82coeuradulte",
            "pet2petrb82coeurcascoresequentialadult",
        ],
        "FDG ORL": [
            "pet1petfdgtroncorlflowadult",
            "pet1petfdgcorpsentierfloworladult",
            "specials1petfdgtroncorlctadult",
            "pet1petfdgtroncflowoncofreezeorladult",
            "specials1petfdgtroncorloncofreezectadult",
        ],
        "GA68 PSMA": ["pet3petga68psmatroncflowadult", "pet3petga68psmacorpsentierflowadult"],
        "SARCOIDOSE": ["pet1petfdgcoeurthoraxadult", "pet1petfdgcoeurtroncadult"],
        "FDG CERV.": ["pet1petfdgcerveauadult"],
        "TAU CERV.": ["pet7pettaucerveauadult"],
        "GA68 DOTA": [
            "abdomen2ga68dotabartboltappettroncfreezbhadult",
            "abdomen2ga68dotabartboltappetcftroncfreezbhadult",
            "pet3petga68dotatoccoeurthoraxadult",
            "pet3petga68dotatatecoeurthoraxadult",
            "pet3petga68dotatoccoeurtroncadult",
            "pet3petga68dotatoctroncadult",
            "pet3petga68dotatatetroncflowadult",
            "pet3petga68dotatoctronconcofreezeadult",
            "specials2petgdotatroncctadult",
        ],
    },
}

#: Description colours, in each machine's description order; OTHER takes the last (grey).
#: Each has a contrast of at least 3.25:1 on white, and the ten and the darker shades of the
#: first nine (later takes [2]) differ pairwise by a CIEDE2000 ΔE of at least 10.1 (DOMAIN §4;
#: the 2019 names "gold", "pink", "lightblue"... were barely visible on white).
COLORS = [
    "#d46300",  # orange
    "#b8860b",  # dark gold
    "#d62728",  # red
    "#c2368f",  # magenta
    "#874b4b",  # brown
    "#8e5cc2",  # purple
    "#1f6fb4",  # blue
    "#138a94",  # teal
    "#2a8a2a",  # green
    "#737373",  # grey: OTHER
]
RETAKE_DESCRIPTIONS = ["OS 3 PHASE", "CAPS. I123", "LYMPHOGRA.", "PARATHYRO", "TAU CERV."]

MACHINE_DRAW: dict[str, dict[str, object]] = {
    "petsiemens": {
        "slots_per_weekday": [15, 15, 15, 15, 15],
        "gap_minutes": 30,
        "prep_minutes": 10,
    },
    "petge": {"slots_per_weekday": [15, 15, 15, 15, 15], "gap_minutes": 30, "prep_minutes": 10},
    "discovery670nm": {"slots_per_weekday": [7, 7, 7, 7, 7], "gap_minutes": 60, "prep_minutes": 10},
    "intevo": {"slots_per_weekday": [7, 7, 7, 7, 7], "gap_minutes": 60, "prep_minutes": 10},
    "millennium": {"slots_per_weekday": [1, 7, 6, 3, 2], "gap_minutes": 60, "prep_minutes": 10},
}

PERIODS = [
    "hebdomadaire",
    "bimensuel",
    "mensuel",
    "trimestriel",
    "semestriel",
    "annuel",
    "longueduree",
]

#: name -> (weeks, anchor); anchor "year" = Jan 1 of the end date's year, "first_year" = Jan 1 of year_start.
PERIOD_DEFS: dict[str, dict[str, object]] = {
    "hebdomadaire": {"weeks": 1, "label_fr": "hebdomadaire", "label_en": "weekly"},
    "bimensuel": {"weeks": 2, "label_fr": "bimensuel", "label_en": "two-weekly"},
    "mensuel": {"weeks": 4, "label_fr": "mensuel", "label_en": "monthly"},
    "trimestriel": {"weeks": 12, "label_fr": "trimestriel", "label_en": "quarterly"},
    "semestriel": {"weeks": 24, "label_fr": "semestriel", "label_en": "half-yearly"},
    "annuel": {"anchor": "year", "label_fr": "annuel", "label_en": "yearly"},
    "longueduree": {"anchor": "first_year", "label_fr": "longue durée", "label_en": "long-term"},
}

#: The reference department's scanners as its RIS schedules them (Modality Worklist):
#: display machine key -> the Scheduled Station AE Titles and modalities of its steps.
WORKLIST_MACHINES: dict[str, dict[str, list[str]]] = {
    "petsiemens": {"station_aes": ["PETCT_VISION"], "modalities": ["PT"]},
    "petge": {"station_aes": ["PETCT_D690"], "modalities": ["PT"]},
    "discovery670nm": {"station_aes": ["SPECT_D670"], "modalities": ["NM"]},
    "intevo": {"station_aes": ["SPECT_INTEVO"], "modalities": ["NM"]},
    "millennium": {"station_aes": ["NM_MILLENNIUM"], "modalities": ["NM"]},
}

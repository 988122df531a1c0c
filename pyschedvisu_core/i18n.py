"""Report labels in French (default) and English, and the date formats of the report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

Language = Literal["fr", "en"]

_TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "report": "Rapport {period}",
        "week": "Semaine {week}",
        "weeks": "Semaines {first}-{last}",
        "from_to": "du {start} au {end}",
        "generated": "Généré le {when}",
        "saved": "Rapport enregistré : {path}",
        "date": "Date",
        "days": "Jours",
        "slots": "Plages",
        "exams": "Exam.",
        "gaps": "Trous",
        "util": "Util.",
        "total": "Total",
        "mean": "Moyen",
        "overall": "Utilisation globale : {util}",
        "description": "DESCRIPTION",
        "n": "N.EXA",
        "moy": "MOY",
        "min": "MIN",
        "max": "MAX",
        "gaps_row": "TROUS",
        "other": "AUTRE",
        "duration_axis": "Durée (min)",
        "distribution": "Répartition horaire",
        "schedule": "Agenda effectif",
        "durations": "Durées des examens",
        "hover": "{label}<br>{date}<br>{start} – {end} ({minutes} min)",
        "hover_gap": "Trou<br>{date}<br>{start} – {end} ({minutes} min)",
        "note_slots": "Plages : examens planifiables par jour ouvrable (configuration), comptées les jours avec examens et les jours lus au PACS où la machine est en service{window} ; jour lu sans examen : sans activité (compté) ; jour non lu : sans données (non compté).",
        "note_gaps": "Trous : pauses d'au moins {gap} min entre deux examens consécutifs, préparation de {prep} min incluse avant et après chaque examen.",
        "note_util": "Util. : examens / plages ; Moyen et utilisation globale = total des examens / total des plages ; plus de 100 % : plus d'examens que de plages.",
        "note_durations": "Durées en mm:ss, en h:mm h au-delà d'une heure ; MED = médiane, P90 = 90e centile (90 % des examens sont plus courts).",
        "note_takes": "[1] / [2] : première prise / prises suivantes (reprises) d'un même examen ({labels}).",
        "note_boxes": "Cadre : examen avec préparation ; bloc intérieur : acquisition ; hachures : examens avec reprise.",
        "note_edges": "Au-delà de {days} jours ouvrables, seuls les contours des examens sont dessinés.",
        "note_occupancy": "Période longue : chaque case (quelques jours × 10 min) prend la couleur de l'examen le plus fréquent.",
        "navigation": "Navigation",
        "page_of": "{machine} – {period}",
        "no_data": "Pages sans données : {pages}",
        "missing_days": "Données incomplètes : {n} jour(s) n'ont pas pu être lus au PACS ({days}) ; leurs examens manquent dans ce rapport.",
        "service_window": " (du {start} au {end})",
        "trimmed": "données depuis le {start}",
        "no_activity_row": "J. sans act.",
        "no_data_row": "J. sans donn.",
        "status_no_activity": "sans activité",
        "status_no_data": "sans données",
        "status_out_of_service": "hors service",
        "median": "MED",
        "p90": "P90",
        "uptake_title": "injection → acquisition",
        "uptake_bookmark": "Injection → acquisition",
        "uptake_panel": "Délai injection → acquisition TEP par description",
        "activity_panel": "Activité administrée par description",
        "uptake_axis": "Délai injection → début de l'acquisition (min)",
        "activity_axis": "Activité administrée (MBq)",
        "legend_window": "fenêtre acceptable",
        "legend_target": "cible",
        "legend_outside": "hors fenêtre",
        "legend_reference": "activité de référence",
        "legend_box": "boîte P25–P75, trait médiane, moustaches P10–P90",
        "injection_marker": "injection (TEP)",
        "hover_injection": "Injection {time}<br>{tracer}, {activity} MBq<br>→ acquisition après {minutes} min",
        "uptake_median": "DÉLAI MÉD.",
        "uptake_spread": "P10–P90",
        "window": "FENÊTRE",
        "in_window": "DANS FEN.",
        "activity_median": "ACT. MÉD.",
        "activity_p90": "ACT. P90",
        "activity_ref": "RÉF.",
        "flagged": "SIGNALÉS",
        "no_injection": "SANS INJ.",
        "note_uptake": "Délai : début de la première acquisition TEP de l'examen − heure d'injection (Radiopharmaceutical Information Sequence des en-têtes DICOM), en minutes ; activité : dose totale injectée (MBq). DÉLAI MÉD. et P10–P90 en min ; DANS FEN. : part des délais dans la fenêtre de leur description ; SANS INJ. : examens sans heure d'injection lisible.",
        "target_of": "(cible {minutes})",
        "note_windows": "Fenêtres [uptake] : {windows}.",
        "note_no_window": "Aucune fenêtre configurée pour ces descriptions ([uptake.<label>]) : délais montrés sans cible.",
        "note_activity": "Activités de référence [uptake] : {refs}.",
        "none": "aucune",
        "note_flagged": "Hors figures (horloge ou saisie erronée) : {flagged}.",
        "flag_after": "{n} injection(s) notée(s) après le début de l'acquisition",
        "flag_older": "{n} injection(s) notée(s) plus de 24 h avant",
        "note_unread": "Sans heure d'injection lisible : {n} examen(s) ({why}).",
        "no_injection_data": "Aucun examen TEP avec heure d'injection sur cette période.",
        "uptake_summary": "Inj.→acq.",
        "in_window_summary": "Fenêtre",
        "activity_summary": "Act. MBq",
        "uptake_table": "Injection → acquisition",
        "windowed_row": "AVEC FENÊTRE",
        "summary_uptake_note": "Machines TEP, examens avec une fenêtre [uptake] (FDG oncologique par défaut ; sans fenêtre : tous) : Inj.→acq. = délai médian entre injection et début de l'acquisition, Fenêtre = part des délais dans la fenêtre, Act. MBq = activité administrée médiane / P90 (réf.) (ligne « avec fenêtre » de la page « injection → acquisition » de chaque machine).",
        "overlaps_note": "Qualité des données : série d'un autre patient chevauchant un examen (horloge ou machine erronée ; examen non coupé) : {days}.",
        "distribution_axis": "examens en cours (max = 100 %)",
        "same_as": "{machine} – {period} : identique à « {other} » (mêmes jours, mêmes examens), page non répétée.",
        "summary_title": "Synthèse",
        "trends_title": "Tendances",
        "summary_subtitle": "Toutes les machines, dans l'ordre de la configuration — rapport au {end}",
        "trends_subtitle": "52 dernières semaines (trait plein) et l'année précédente (pointillés) — au {end}",
        "machine": "Machine",
        "period": "Période",
        "median_duration": "Durée méd.",
        "retakes": "Reprises",
        "change": "Δ exam.",
        "change_note": "Δ exam. : variation du nombre d'examens par rapport à la même période juste avant (▲ hausse, ▼ baisse) ; - : pas de période précédente ou aucune donnée.",
        "summary_note": "Util. = total des examens / total des plages (jours avec examens ou lus au PACS en service). J. sans act. : jours lus sans examen ; J. sans donn. : jours non lus, non comptés.",
        "weekly_util": "Utilisation hebdomadaire (%)",
        "weekly_exams": "Examens par semaine",
        "monthly_descriptions": "Examens par mois et description",
        "this_year": "52 dernières semaines",
        "last_year": "année précédente",
        "workbook": "Tableaux (Excel)",
        "tables": "Tableaux de la page",
        "counts_table": "Comptes",
        "durations_table": "Durées",
        "dropped_left_out": "Exclus : {parts}.",
        "dropped_institutions": "{n} examen(s) d'autres institutions ({values})",
        "dropped_days": "{n} jour(s) ouvrable(s) sans examen retenu ({days})",
        "dropped_unknown": "Non configuré : {parts}.",
        "dropped_mixed": "{n} examen(s) d'appareils inconnus, hors rapport ({values})",
        "dropped_other": "{n} classé(s) AUTRE ({values})",
        "plan_title": "Planifié / réalisé",
        "plan_days": "plan (worklist) : {n} des {total} jours",
        "plan_days_none": "aucun plan (pas d'instantané de la worklist)",
        "plan_definitions": "Util. plan = (réal. + non planif.) / planif. · retard = début réel − planifié",
        "planned": "Planif.",
        "performed": "Réal.",
        "no_shows": "Absents",
        "unplanned": "Non planif.",
        "added_same_day": "Ajouts",
        "realised_pct": "Réal. (%)",
        "util_plan": "Util. plan",
        "delay_median": "Retard méd.",
        "delay_p90": "Retard P90",
        "no_plan": "sans plan",
        "planned_slot": "créneau planifié",
        "no_show_slot": "absent (non réalisé)",
        "hover_plan": "Planifié {start} – {end}<br>{description}<br>{status}",
        "hover_plan_performed": "commencé {actual} ({delay})",
        "hover_plan_no_show": "absent",
        "plan_summary_title": "Planifié / réalisé",
        "plan_summary_subtitle": "Créneaux de la worklist contre examens réalisés — rapport au {end}",
        "plan_summary_note": "Sur les seuls jours avec un plan (instantanés de la worklist) ; les autres jours ne comptent pas : « sans plan » n'est pas « absent ». Réal. (%) = réalisés / planifiés ; Util. plan = (réalisés + non planifiés) / planifiés ; retard = début réel − début planifié.",
        "plan_days_col": "Jours plan",
        "plan_table": "Planifié / réalisé",
    },
    "en": {
        "report": "{period} report",
        "week": "Week {week}",
        "weeks": "Weeks {first}-{last}",
        "from_to": "from {start} to {end}",
        "generated": "Generated on {when}",
        "saved": "Report saved in: {path}",
        "date": "Date",
        "days": "Days",
        "slots": "Slots",
        "exams": "Exams",
        "gaps": "Gaps",
        "util": "Util.",
        "total": "Total",
        "mean": "Mean",
        "overall": "Overall utilisation: {util}",
        "description": "DESCRIPTION",
        "n": "N.EXA",
        "moy": "MEAN",
        "min": "MIN",
        "max": "MAX",
        "gaps_row": "GAPS",
        "other": "OTHER",
        "duration_axis": "Duration (min)",
        "distribution": "Time of day",
        "schedule": "Effective schedule",
        "durations": "Study durations",
        "hover": "{label}<br>{date}<br>{start} – {end} ({minutes} min)",
        "hover_gap": "Gap<br>{date}<br>{start} – {end} ({minutes} min)",
        "note_slots": "Slots: studies that can be planned per business day (configuration), counted on days with studies and on days read from the PACS while the machine is in service{window}; a day read without a study: no activity (counted); a day not read: no data (not counted).",
        "note_gaps": "Gaps: idle time of at least {gap} min between consecutive studies, with {prep} min of preparation before and after each study.",
        "note_util": "Util.: studies / slots; Mean and overall utilisation = total studies / total slots; above 100 %: more studies than planned slots.",
        "note_durations": "Durations as mm:ss, as h:mm h beyond an hour; MED = median, P90 = 90th percentile (90 % of the studies are shorter).",
        "note_takes": "[1] / [2]: first take / later takes (retakes) of the same study ({labels}).",
        "note_boxes": "Frame: study with preparation; inner block: acquisition; hatched: studies with retakes.",
        "note_edges": "Beyond {days} business days only the outlines of the studies are drawn.",
        "note_occupancy": "Long period: each cell (a few days × 10 min) takes the colour of the most frequent study.",
        "navigation": "Navigation",
        "page_of": "{machine} – {period}",
        "no_data": "Pages without data: {pages}",
        "missing_days": "Incomplete data: {n} day(s) could not be read from the PACS ({days}); their studies are missing from this report.",
        "service_window": " (from {start} to {end})",
        "trimmed": "data from {start}",
        "no_activity_row": "Days no act.",
        "no_data_row": "Days no data",
        "status_no_activity": "no activity",
        "status_no_data": "no data",
        "status_out_of_service": "out of service",
        "median": "MED",
        "p90": "P90",
        "uptake_title": "injection → scan",
        "uptake_bookmark": "Injection → scan",
        "uptake_panel": "Injection to PET scan per description",
        "activity_panel": "Administered activity per description",
        "uptake_axis": "Injection to the start of the scan (min)",
        "activity_axis": "Administered activity (MBq)",
        "legend_window": "acceptable window",
        "legend_target": "target",
        "legend_outside": "outside the window",
        "legend_reference": "reference activity",
        "legend_box": "box P25–P75, line median, whiskers P10–P90",
        "injection_marker": "injection (PET)",
        "hover_injection": "Injection {time}<br>{tracer}, {activity} MBq<br>→ scan after {minutes} min",
        "uptake_median": "MEDIAN",
        "uptake_spread": "P10–P90",
        "window": "WINDOW",
        "in_window": "IN WINDOW",
        "activity_median": "ACT. MED.",
        "activity_p90": "ACT. P90",
        "activity_ref": "REF.",
        "flagged": "FLAGGED",
        "no_injection": "NO INJ.",
        "note_uptake": "Uptake: start of the study's first PET acquisition − injection time (Radiopharmaceutical Information Sequence of the DICOM headers), in minutes; activity: total administered dose (MBq). MEDIAN and P10–P90 in min; IN WINDOW: share of the uptakes inside their description's window; NO INJ.: studies without a readable injection time.",
        "target_of": "(target {minutes})",
        "note_windows": "Windows [uptake]: {windows}.",
        "note_no_window": "No window configured for these descriptions ([uptake.<label>]): uptakes shown without a target.",
        "note_activity": "Reference activities [uptake]: {refs}.",
        "none": "none",
        "note_flagged": "Left out of the figures (clock or entry error): {flagged}.",
        "flag_after": "{n} injection(s) recorded after the scan start",
        "flag_older": "{n} injection(s) recorded more than 24 h before it",
        "note_unread": "No readable injection time: {n} stud(ies) ({why}).",
        "no_injection_data": "No PET study with an injection time in this period.",
        "uptake_summary": "Inj.→scan",
        "in_window_summary": "In window",
        "activity_summary": "Act. MBq",
        "uptake_table": "Injection → scan",
        "windowed_row": "WITH A WINDOW",
        "summary_uptake_note": 'PET machines, studies with an [uptake] window (FDG oncology by default; none: every study): Inj.→scan = median time from injection to the start of the scan, In window = share inside the window, Act. MBq = median / P90 administered activity (reference) (the "with a window" row of each machine\'s "injection → scan" page).',
        "overlaps_note": "Data quality: another patient's series overlapping a study (clock or scanner wrong; study not cut): {days}.",
        "distribution_axis": "studies in progress (max = 100 %)",
        "same_as": "{machine} – {period}: same as “{other}” (same days, same studies), page not repeated.",
        "summary_title": "Summary",
        "trends_title": "Trends",
        "summary_subtitle": "All machines, in configuration order — report ending {end}",
        "trends_subtitle": "Last 52 weeks (solid) and the year before (dotted) — ending {end}",
        "machine": "Machine",
        "period": "Period",
        "median_duration": "Median dur.",
        "retakes": "Retakes",
        "change": "Δ exams",
        "change_note": "Δ exams: change in the number of studies against the same period just before (▲ up, ▼ down); -: no previous period or no data.",
        "summary_note": "Util. = total studies / total slots (days with studies or read from the PACS in service). Days no act.: days read without any study; Days no data: days not read, not counted.",
        "weekly_util": "Weekly utilisation (%)",
        "weekly_exams": "Studies per week",
        "monthly_descriptions": "Studies per month and description",
        "this_year": "last 52 weeks",
        "last_year": "year before",
        "workbook": "Tables (Excel)",
        "tables": "Tables of the page",
        "counts_table": "Counts",
        "durations_table": "Durations",
        "dropped_left_out": "Left out: {parts}.",
        "dropped_institutions": "{n} stud(ies) of other institutions ({values})",
        "dropped_days": "{n} business day(s) with no study kept ({days})",
        "dropped_unknown": "Not configured: {parts}.",
        "dropped_mixed": "{n} stud(ies) of unknown scanners, not in this report ({values})",
        "dropped_other": "{n} labelled OTHER ({values})",
        "plan_title": "Planned / performed",
        "plan_days": "plan (worklist): {n} of {total} days",
        "plan_days_none": "no plan (no worklist snapshot)",
        "plan_definitions": "Util. plan = (perf. + unplanned) / planned · delay = actual − planned start",
        "planned": "Planned",
        "performed": "Perf.",
        "no_shows": "No-shows",
        "unplanned": "Unplanned",
        "added_same_day": "Same-day",
        "realised_pct": "Perf. (%)",
        "util_plan": "Util. plan",
        "delay_median": "Delay med.",
        "delay_p90": "Delay P90",
        "no_plan": "no plan",
        "planned_slot": "planned slot",
        "no_show_slot": "no-show (not performed)",
        "hover_plan": "Planned {start} – {end}<br>{description}<br>{status}",
        "hover_plan_performed": "started {actual} ({delay})",
        "hover_plan_no_show": "no-show",
        "plan_summary_title": "Planned / performed",
        "plan_summary_subtitle": "Worklist slots against performed studies — report ending {end}",
        "plan_summary_note": "Only days with a plan (worklist snapshots) count; the other days do not: “no plan” is not “no-show”. Perf. (%) = performed / planned; Util. plan = (performed + unplanned) / planned; delay = actual start − planned start.",
        "plan_days_col": "Plan days",
        "plan_table": "Planned / performed",
    },
}

# The network report (several sites, issue 20).
_TEXTS["fr"].update(
    {
        "machine_type": "Type",
        "site": "Site",
        "network_no_shows": "Absences",
        "network_total": "Réseau",
        "network_title": "Réseau",
        "network_subtitle": "Les sites par type de machine — rapport au {end}",
        "network_note": "Chaque site publie les chiffres de son propre rapport (aucun examen, aucune clé patient) ; Réseau = leur somme, Util. = somme des examens / somme des plages. La durée médiane reste par machine. Absences : selon le plan du RIS, là où il est connu.",
        "network_trends_title": "Réseau – tendances",
        "network_trends_subtitle": "Utilisation hebdomadaire par site et du réseau (trait épais), examens du réseau — au {end}",
        "network_exams": "Examens du réseau par semaine",
        "network_missing_sites": "Sites sans chiffres pour cette semaine (leur rapport hebdomadaire n'a pas abouti) : {sites}.",
        "network_missing_days": "{site} : {n} jour(s) de la semaine n'ont pas pu être lus au PACS.",
    }
)
_TEXTS["en"].update(
    {
        "machine_type": "Type",
        "site": "Site",
        "network_no_shows": "No-shows",
        "network_total": "Network",
        "network_title": "Network",
        "network_subtitle": "The sites per machine type — report ending {end}",
        "network_note": "Each site publishes the numbers of its own report (no study, no patient key); Network = their sum, Util. = summed studies / summed slots. The median duration stays per machine. No-shows: from the RIS plan, where it is known.",
        "network_trends_title": "Network – trends",
        "network_trends_subtitle": "Weekly utilisation per site and of the network (thick line), the network's studies — ending {end}",
        "network_exams": "Network studies per week",
        "network_missing_sites": "Sites without numbers for this week (their weekly report did not complete): {sites}.",
        "network_missing_days": "{site}: {n} day(s) of the week could not be read from the PACS.",
    }
)

_WEEKDAYS = {
    "fr": ["Lu", "Ma", "Me", "Je", "Ve", "Sa", "Di"],
    "en": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"],
}
_MONTHS = {
    "fr": [
        "janv.",
        "févr.",
        "mars",
        "avr.",
        "mai",
        "juin",
        "juil.",
        "août",
        "sept.",
        "oct.",
        "nov.",
        "déc.",
    ],
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
}
_WEEK_PREFIX = {"fr": "S", "en": "W"}


def _lang(lang: str) -> str:
    return lang if lang in _TEXTS else "fr"


def text(key: str, lang: str = "fr", **values: object) -> str:
    """The label ``key`` in ``lang``, with ``values`` filled in."""
    template = _TEXTS[_lang(lang)][key]
    return template.format(**values) if values else template


def description_label(description: str, lang: str = "fr") -> str:
    """Printed name of a description label: ``OTHER`` becomes ``AUTRE`` in French."""
    if description == "OTHER":
        return text("other", lang)
    if description.startswith("OTHER "):  # "OTHER [1]"
        return text("other", lang) + description[len("OTHER") :]
    return description


def fmt_date(day: dt.date) -> str:
    """``dd/mm/yyyy``, the date format of the report in both languages."""
    return day.strftime("%d/%m/%Y")


def fmt_datetime(when: dt.datetime) -> str:
    """``dd/mm/yyyy HH:MM``."""
    return when.strftime("%d/%m/%Y %H:%M")


def weekday_abbrev(day: dt.date, lang: str = "fr") -> str:
    """Two-letter weekday name."""
    return _WEEKDAYS[_lang(lang)][day.weekday()]


def month_abbrev(day: dt.date, lang: str = "fr") -> str:
    """Short month name, e.g. ``nov.``."""
    return _MONTHS[_lang(lang)][day.month - 1]


def week_abbrev(week: int, lang: str = "fr") -> str:
    """``S47`` (fr) / ``W47`` (en)."""
    return f"{_WEEK_PREFIX[_lang(lang)]}{week}"


def fmt_mmss(seconds: float | None) -> str:
    """``mm:ss`` (minutes may exceed 59); ``-`` for a missing value."""
    if seconds is None or seconds != seconds:  # None or NaN
        return "-"
    total = round(seconds)
    return f"{total // 60:02d}:{total % 60:02d}"


def fmt_duration(seconds: float | None) -> str:
    """``mm:ss`` under an hour, ``h:mm h`` from an hour on (``265:18`` reads ``4:25 h``);
    ``-`` for a missing value."""
    if seconds is None or seconds != seconds:
        return "-"
    total = round(seconds)
    if total < 3600:
        return f"{total // 60:02d}:{total % 60:02d}"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d} h"


def fmt_delay(seconds: float | None) -> str:
    """A signed start delay: ``+12:30``, ``-04:05`` (early), ``+1:05 h``; ``-`` if missing."""
    if seconds is None or seconds != seconds:
        return "-"
    sign = "-" if round(seconds) < 0 else "+"
    return sign + fmt_duration(abs(seconds))


def fmt_percent(value: float | None) -> str:
    """``87 %`` (fr spacing kept in both languages for a stable table width); ``-`` if missing."""
    if value is None or value != value:
        return "-"
    return f"{value:.0f} %"


def missing_days_note(days: Sequence[dt.date], lang: str = "fr") -> str | None:
    """The data-quality note printed in the report and the e-mail, or None when complete."""
    if not days:
        return None
    listed = ", ".join(fmt_date(d) for d in days)
    return text("missing_days", lang, n=len(days), days=listed)

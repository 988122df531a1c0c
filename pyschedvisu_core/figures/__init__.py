"""One A4 portrait plotly figure per machine x period (DOMAIN §4), built from frames.

Large coordinate arrays are passed to plotly as base64 typed arrays (``{"dtype", "bdata"}``)
and boxes of one label are drawn by ONE trace of NaN-separated closed paths, so a ten-year
page with tens of thousands of studies stays a few traces and renders in about a second.
Figures carry no patient data: hover texts hold the label, the date, times and duration.

The page is drawn by the modules of this package: :mod:`.spec` (what a page is, its numbers),
:mod:`.style` (colours, plain-dict traces, typed arrays, notes), :mod:`.axes` (days and hours
to coordinates), :mod:`.schedule_grid` (the schedule's boxes, statuses, hover texts and
injection markers), :mod:`.planned_slots` (planned slots outlined), :mod:`.tables` (tables
drawn in figures), :mod:`.distributions` (violins, time-of-day curves), :mod:`.page` (the
page itself) and :mod:`.printing` (per-run stamps, the print form). Their names used elsewhere
are re-exported here.
"""

from __future__ import annotations

from pyschedvisu_core.figures.axes import day_positions as day_positions
from pyschedvisu_core.figures.axes import hour_range as hour_range
from pyschedvisu_core.figures.axes import tick_marks as tick_marks
from pyschedvisu_core.figures.distributions import distribution_traces as distribution_traces
from pyschedvisu_core.figures.distributions import violin_traces as violin_traces
from pyschedvisu_core.figures.page import notes_lines as notes_lines
from pyschedvisu_core.figures.page import overlap_days as overlap_days
from pyschedvisu_core.figures.page import page_dict as page_dict
from pyschedvisu_core.figures.page import page_figure as page_figure
from pyschedvisu_core.figures.planned_slots import plan_hours as plan_hours
from pyschedvisu_core.figures.planned_slots import plan_outline_traces as plan_outline_traces
from pyschedvisu_core.figures.printing import printable as printable
from pyschedvisu_core.figures.printing import stamp as stamp
from pyschedvisu_core.figures.schedule_grid import hatch_lines as hatch_lines
from pyschedvisu_core.figures.schedule_grid import injection_marks as injection_marks
from pyschedvisu_core.figures.schedule_grid import injection_traces as injection_traces
from pyschedvisu_core.figures.schedule_grid import occupancy_traces as occupancy_traces
from pyschedvisu_core.figures.schedule_grid import schedule_traces as schedule_traces
from pyschedvisu_core.figures.schedule_grid import status_traces as status_traces
from pyschedvisu_core.figures.spec import BOX_HALF as BOX_HALF
from pyschedvisu_core.figures.spec import BOX_SHIFT as BOX_SHIFT
from pyschedvisu_core.figures.spec import DISTRIBUTION_MIN_DAYS as DISTRIBUTION_MIN_DAYS
from pyschedvisu_core.figures.spec import EDGE_ONLY_DAYS as EDGE_ONLY_DAYS
from pyschedvisu_core.figures.spec import GAP_LINES_MAX_DAYS as GAP_LINES_MAX_DAYS
from pyschedvisu_core.figures.spec import HOVER_META as HOVER_META
from pyschedvisu_core.figures.spec import NO_SHOW_SLOT as NO_SHOW_SLOT
from pyschedvisu_core.figures.spec import NOTE_MAX_DAYS as NOTE_MAX_DAYS
from pyschedvisu_core.figures.spec import OCCUPANCY_COLUMNS as OCCUPANCY_COLUMNS
from pyschedvisu_core.figures.spec import PAGE_HEIGHT as PAGE_HEIGHT
from pyschedvisu_core.figures.spec import PAGE_WIDTH as PAGE_WIDTH
from pyschedvisu_core.figures.spec import PLAN_OUTLINE_DAYS as PLAN_OUTLINE_DAYS
from pyschedvisu_core.figures.spec import PLAN_ROW_H as PLAN_ROW_H
from pyschedvisu_core.figures.spec import PLANNED_SLOT as PLANNED_SLOT
from pyschedvisu_core.figures.spec import SCHEDULE_Y as SCHEDULE_Y
from pyschedvisu_core.figures.spec import SEGMENT_DAYS as SEGMENT_DAYS
from pyschedvisu_core.figures.spec import STATUS_FILLS as STATUS_FILLS
from pyschedvisu_core.figures.spec import WEEK_SPACER as WEEK_SPACER
from pyschedvisu_core.figures.spec import PageNumbers as PageNumbers
from pyschedvisu_core.figures.spec import PagePlan as PagePlan
from pyschedvisu_core.figures.spec import PageSpec as PageSpec
from pyschedvisu_core.figures.spec import page_numbers as page_numbers
from pyschedvisu_core.figures.spec import page_plan_table as page_plan_table
from pyschedvisu_core.figures.style import _FONT as _FONT
from pyschedvisu_core.figures.style import _HEADER_FILL as _HEADER_FILL
from pyschedvisu_core.figures.style import _INK as _INK
from pyschedvisu_core.figures.style import _MUTED as _MUTED
from pyschedvisu_core.figures.style import _NO_TEMPLATE as _NO_TEMPLATE
from pyschedvisu_core.figures.style import _ROW_FILLS as _ROW_FILLS
from pyschedvisu_core.figures.style import _SUM_FILL as _SUM_FILL
from pyschedvisu_core.figures.style import NOTE_WIDTH as NOTE_WIDTH
from pyschedvisu_core.figures.style import Trace as Trace
from pyschedvisu_core.figures.style import _note as _note
from pyschedvisu_core.figures.style import _scatter as _scatter
from pyschedvisu_core.figures.style import decode_array as decode_array
from pyschedvisu_core.figures.style import typed_array as typed_array
from pyschedvisu_core.figures.style import wrap as wrap
from pyschedvisu_core.figures.tables import TableDraw as TableDraw
from pyschedvisu_core.figures.tables import count_table_draw as count_table_draw
from pyschedvisu_core.figures.tables import duration_table_draw as duration_table_draw
from pyschedvisu_core.figures.tables import plan_table_draw as plan_table_draw
from pyschedvisu_core.figures.tables import table_cells as table_cells
from pyschedvisu_core.figures.tables import table_traces as table_traces

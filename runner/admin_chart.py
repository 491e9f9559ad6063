"""A job's run durations as a small bar chart, drawn on the server as inline SVG.

No chart library and no script: the page works offline and the chart is in the
HTML the tests read. One bar per run, oldest on the left, coloured by status (the
badges' colours), height proportional to the duration against the longest shown.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from runner.describe import duration_words
from runner.models import Run, RunStatus

WIDTH, HEIGHT, BAR_GAP = 600, 120, 2
AXIS = 14  # room under the bars for the scale's words
MIN_BAR = 2  # a run of 0 ms still shows as a sliver
COLOURS = {
    RunStatus.OK: "#2e7d32",
    RunStatus.ERROR: "#c62828",
    RunStatus.TIMEOUT: "#c62828",
    RunStatus.RUNNING: "#1565c0",
}


def duration_chart(runs: list[Run]):
    """An ``<svg>`` of the durations of ``runs`` (newest first, as queried); "—" when none ran."""
    timed = [run for run in reversed(runs) if run.duration_ms is not None]
    if not timed:
        return "—"
    longest = max(run.duration_ms for run in timed) or 1
    step = WIDTH / max(len(timed), 1)
    bar_width = max(step - BAR_GAP, 1)
    plot = HEIGHT - AXIS
    bars = format_html_join(
        "",
        '<a href="{}"><rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
        "<title>#{} {} {}</title></rect></a>",
        (
            (
                reverse("admin:runner_run_change", args=[run.pk]),
                _number(index * step),
                _number(plot - _height(run.duration_ms, longest, plot)),
                _number(bar_width),
                _number(_height(run.duration_ms, longest, plot)),
                COLOURS.get(run.status, "#777"),
                run.pk,
                run.status,
                duration_words(run.duration_ms),
            )
            for index, run in enumerate(timed)
        ),
    )
    return format_html(
        '<svg class="jr-chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'aria-label="durations of the last {n} runs, longest {top}">{bars}'
        '<line x1="0" y1="{plot}" x2="{w}" y2="{plot}" stroke="#999"/>'
        '<text x="0" y="{h}" font-size="11" fill="#666">longest {top}; oldest left, newest right'
        "</text></svg>",
        w=WIDTH,
        h=HEIGHT,
        n=len(timed),
        top=duration_words(longest),
        bars=bars,
        plot=plot,
    )


def _height(duration_ms: int, longest: int, plot: int) -> float:
    return max(MIN_BAR, duration_ms / longest * (plot - 2))


def _number(value: float) -> str:
    # format_html escapes its arguments to strings first, so numbers come formatted.
    return f"{value:.1f}"

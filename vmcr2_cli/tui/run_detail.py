"""The selected run in two or three lines: what it is, then what the runs table has no room for.

Items are laid out in order, wrapped at the width; when they need more lines than
``max_lines``, the least important ones are left out (never cut in the middle).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from vmcr2_cli.objective_registry import objective_label
from vmcr2_cli.numbers import fmt_accuracy, fmt_duration, fmt_int, fmt_rate, fmt_seconds, fmt_value
from vmcr2_cli.tui.formatting import fmt_gpu, status_text
from vmcr2_cli.tui.summary import RunSummary

SEPARATOR = "  "


class RunDetail(Widget):
    """Shows one ``RunSummary`` (``summary``), in the run's colour."""

    DEFAULT_CSS = """
    RunDetail {
        height: 2;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.summary: RunSummary | None = None
        self.colour = 7
        self.max_lines = 2

    def show(self, summary: RunSummary | None, colour: int, max_lines: int = 2) -> None:
        self.summary, self.colour, self.max_lines = summary, colour, max_lines
        self._fit_height()
        self.refresh()

    def on_resize(self) -> None:
        self._fit_height()

    def _fit_height(self) -> None:
        """As many lines as the text needs; set only when it changes (a new layout costs a repaint)."""
        lines = len(self._text().split())
        if self.styles.height is None or self.styles.height.value != lines:
            self.styles.height = lines

    def _text(self) -> Text:
        if self.summary is None:
            return Text("no run selected", style="dim")
        width = max(20, self.content_region.width or self.size.width)
        return detail_text(self.summary, self.colour, width, self.max_lines)

    def render(self) -> RenderResult:
        return self._text()


def detail_items(s: RunSummary, colour: int) -> list[tuple[int, Text]]:
    """(rank, item) in display order; rank 1 is kept first, higher ranks go first when space runs out."""

    def item(label: str, value: str, style: str = "") -> Text:
        return Text.assemble((f"{label} ", "dim"), (value, style))

    status, status_style = status_text(s.status)
    items: list[tuple[int, Text]] = [
        (1, Text.assemble(("━━ ", f"color({colour})"), (s.name, "bold"))),
        (1, Text(objective_label(s.objective), style=f"bold color({colour})")),
    ]
    if s.stalled_reason:
        items.append((1, Text(f"{status}: {s.stalled_reason}", style=status_style)))
    items += [
        (8, item("profile", s.profile or "—")),
        (9, item("dataset", s.dataset or "—")),
        (9, item("device", s.device or "—")),
        (3, item("R", fmt_value(s.r))),
        (3, item("R_c", fmt_value(s.r_c))),
        (4, item("step", fmt_int(s.step))),
        (2, item("s/epoch", fmt_seconds(s.mean_epoch_time_s))),
        (2, item("img/s", fmt_rate(s.images_per_s))),
        (2, Text("no GPU") if s.has_gpu is False else item("GPU", fmt_gpu(s.has_gpu, s.gpu_util, s.gpu_mem_mb))),
        (5, item("loss", fmt_value(s.loss))),
        (7, item("lr", "—" if s.lr is None else f"{s.lr:.3g}")),
        (3, item("last line", "—" if s.last_line_age_s is None else f"{fmt_duration(s.last_line_age_s)} ago")),
        (6, item("elapsed", fmt_duration(s.elapsed_s))),
        (5, item("latches", str(s.latches))),
    ]
    if s.eval_accuracy is not None:
        items.append((3, item("eval", fmt_accuracy(s.eval_accuracy))))
    if s.knn_accuracy is not None:
        items.append((3, item("kNN", fmt_accuracy(s.knn_accuracy))))
    if s.invariance is not None:
        items.append((4, item("invariance", fmt_value(s.invariance))))
    if s.corrupt_lines:
        items.append((2, Text(f"{s.corrupt_lines} corrupt line{'s' if s.corrupt_lines != 1 else ''} skipped",
                              style="yellow")))
    return items


def detail_text(s: RunSummary, colour: int, width: int, max_lines: int) -> Text:
    """The items that fit in ``max_lines`` lines of ``width``, wrapped between items."""
    items = detail_items(s, colour)
    while True:
        lines = _flow([text for _, text in items], width)
        if len(lines) <= max_lines or len(items) <= 2:
            return Text("\n").join(lines[:max_lines])
        worst = max(range(len(items)), key=lambda i: (items[i][0], i))
        del items[worst]


def _flow(items: list[Text], width: int) -> list[Text]:
    lines: list[Text] = [Text()]
    for item in items:
        line = lines[-1]
        needed = item.cell_len + (len(SEPARATOR) if line.cell_len else 0)
        if line.cell_len and line.cell_len + needed > width:
            line = Text()
            lines.append(line)
        if line.cell_len:
            line.append(SEPARATOR)
        line.append_text(item)
        if line.cell_len > width:
            line.truncate(width, overflow="ellipsis")
    return lines

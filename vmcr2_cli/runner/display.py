"""What a training run shows in the terminal (Rich): a step bar and one line per epoch."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from vmcr2_cli.numbers import fmt_duration
from vmcr2_cli.runs import epoch_number


class TrainingDisplay:
    """Epoch lines on stderr (so ``--json`` keeps stdout clean) and a transient step bar."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, console: Console | None = None,
                 quiet: bool = False) -> None:
        """``quiet``: show nothing (the ranks other than 0 of a distributed run)."""
        self.console = console or Console(stderr=True, highlight=False, quiet=quiet)
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.epoch_times: list[float] = []
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.task = None

    def __enter__(self) -> "TrainingDisplay":
        self.progress.start()
        self.task = self.progress.add_task("steps", total=self.steps_per_epoch, epoch=1,
                                           epochs=self.total_epochs, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def message(self, *parts: str | tuple[str, str]) -> None:
        """One message of plain text: ``parts`` are strings or (string, Rich style) pairs, never markup,
        so that brackets in a path or in ``pip install 'vmcr2[tensorboard]'`` are printed as written."""
        self.console.print(Text.assemble(*parts))

    def on_step(self, record: dict) -> None:
        status = f"ΔR {record['delta_r']:.3f}  loss {record['loss']:.4g}  {record['images_per_s']:,.0f} img/s"
        self.progress.update(self.task, completed=(record["step"] - 1) % self.steps_per_epoch + 1,
                             epoch=epoch_number(record), status=status)

    def on_epoch(self, record: dict) -> None:
        self.epoch_times.append(record["epoch_time_s"])
        done = epoch_number(record)
        remaining = (self.total_epochs - done) * sum(self.epoch_times) / len(self.epoch_times)
        fields = [f"epoch {done:>{len(str(self.total_epochs))}}/{self.total_epochs}", f"ΔR {record['delta_r']:8.4f}",
                  f"R {record['r']:8.4f}", f"R_c {record['r_c']:8.4f}"]
        if "m_term" in record:  # what V-MCR² adds: its variational terms
            fields += [f"R^v {record['r_v']:.2f}", f"R_c^v {record['r_c_v']:.2f}", f"M {record['m_term']:.3g}"]
        if "invariance" in record:  # self-supervised: how alike an image's views are
            fields.append(f"invariance {record['invariance']:.3f}")
        fields += [f"{record['epoch_time_s']:6.1f} s", f"{record['images_per_s']:8,.0f} img/s",
                   f"ETA {fmt_duration(remaining)}"]
        self.console.print(Text(between_fields(fields, self.console.width)), soft_wrap=True)
        self.progress.reset(self.task, total=self.steps_per_epoch, epoch=min(done + 1, self.total_epochs),
                            epochs=self.total_epochs, status="")


def between_fields(fields: list[str], width: int, separator: str = "  ", indent: int = 2) -> str:
    """``fields`` joined by ``separator`` in lines of at most ``width`` columns, broken between two
    fields and never inside one (a label stays beside its value); continuation lines indented."""
    lines, line = [], ""
    for field in fields:
        joined = f"{line}{separator}{field}" if line else field
        if line and len(joined) > width:
            lines.append(line)
            joined = " " * indent + field
        line = joined
    return "\n".join([*lines, line])

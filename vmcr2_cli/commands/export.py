"""``vmcr2 export``: runs' epoch metrics as one CSV (``--csv``), and a run's featurizer as an ONNX, TorchScript
or safetensors file for use outside vmcr2."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmcr2_cli.errors import BadInput


def export(
    runs: list[Path] = typer.Argument(..., help="Run directories (or folders of runs); one run for a model file."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the CSV to FILE ('-': stdout)."),
    onnx_path: Optional[Path] = typer.Option(None, "--onnx", help="Write the featurizer as an ONNX model to FILE."),
    torchscript_path: Optional[Path] = typer.Option(None, "--torchscript",
                                                    help="Write the featurizer as TorchScript to FILE."),
    safetensors_path: Optional[Path] = typer.Option(None, "--safetensors",
                                                    help="Write its weights, preprocessing and config to FILE."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="The model files' checkpoint: last or best."),
) -> None:
    """A CSV of the runs' metrics, or a run's featurizer as a model file.

    --csv: one row per run and epoch, one column per metric; read it with pandas.read_csv(FILE).
    The TensorBoard event files are in each run's tensorboard/.

    --onnx / --torchscript: a model that takes uint8 images (N, C, H, W) at the size the run's
    dataset stores (Fashion-MNIST: 1×28×28) and returns the unit-norm features; the run's
    preprocessing is inside it. --safetensors: the weights, with the preprocessing, the class names
    and the config as metadata. Model files need `pip install 'vmcr2[export]'`.
    """
    models = {name: path for name, path in (("onnx", onnx_path), ("torchscript", torchscript_path),
                                            ("safetensors", safetensors_path)) if path is not None}
    if csv_path is None and not models:
        raise BadInput("export: say what to write: --csv FILE (or --csv - for stdout), --onnx, --torchscript or "
                       "--safetensors FILE")
    if models:
        _check_models(runs, models)
    if csv_path is not None:
        _export_csv(runs, csv_path)
    if models:
        _export_models(runs[0], models, checkpoint)


def _check_models(runs: list[Path], models: dict[str, Path]) -> None:
    """Everything a model export can refuse, refused before any file is written."""
    from vmcr2_cli.featurizer.exporters import check_available
    from vmcr2_cli.runs import check_output_file

    if len(runs) != 1:
        raise BadInput(f"export --{' --'.join(models)}: name one run, not {len(runs)}")
    targets = [path.resolve() for path in models.values()]
    if len(set(targets)) != len(targets):
        raise BadInput("export: two model files of the same name")
    check_available(list(models))
    for name, path in models.items():
        check_output_file(path, f"--{name}")


def _export_csv(runs: list[Path], csv_path: Path) -> None:
    from vmcr2_cli.evaluation.comparison import resolve_run_paths
    from vmcr2_cli.evaluation.export import epoch_rows, to_csv
    from vmcr2_cli.runs import atomic_write_text

    text = to_csv(epoch_rows(resolve_run_paths(runs)))
    if str(csv_path) == "-":
        typer.echo(text, nl=False)
        return
    if csv_path.is_dir():
        raise BadInput(f"--csv {csv_path}: is a folder; name a file")
    atomic_write_text(csv_path, text)
    typer.echo(f"wrote {csv_path} ({text.count(chr(10)) - 1} rows)")


def _export_models(run: Path, models: dict[str, Path], checkpoint: str) -> None:
    from vmcr2_cli.featurizer import load_featurizer
    from vmcr2_cli.featurizer.exporters import FORMATS, check_expressible

    featurizer = load_featurizer(run, checkpoint, device="cpu", precision="fp32")
    check_expressible(featurizer, list(models))
    shape = "×".join(map(str, featurizer.preprocessing.shape))
    for name, path in models.items():
        FORMATS[name][0](featurizer, path)
        what = "weights and metadata" if name == "safetensors" else f"uint8 N×{shape} → N×{featurizer.feature_dim}"
        typer.echo(f"wrote {path} ({name}: {what})")

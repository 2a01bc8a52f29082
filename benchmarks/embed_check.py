"""Embedding new images, checked and timed on a trained run (issue: use what you trained).

    python benchmarks/embed_check.py runs/latest [--images 200] [--repeats 3] [--work /tmp/embed-check]

1. Agreement. The run's first ``--images`` test images are written as PNG files (28×28 for
   Fashion-MNIST, as its files hold them) beside a broken PNG and a text file; ``vmcr2 embed`` of
   that folder is compared with ``vmcr2 eval --save-features``' test features (minimum cosine), and
   the exported ONNX model (onnxruntime), the TorchScript file (plain ``torch.jit.load``) and
   ``load_featurizer(...).embed`` on the raw uint8 arrays with each other.
2. Speed, in images/s, medians of ``--repeats``: the network's forward pass alone on the decoded,
   normalised batch; the featurizer on uint8 arrays (normalisation inside); embedding the PNG files
   (decoding, fitting, forward); and the whole ``vmcr2 embed`` command (with its start-up).

Prints one JSON document. Run it alone on the machine when the speeds are to be quoted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmcr2_cli import load_featurizer  # noqa: E402
from vmcr2_cli.featurizer.embedding import embed_inputs, parse_inputs  # noqa: E402
from vmcr2_cli.featurizer.exporters import write_onnx, write_torchscript  # noqa: E402


def stored_images(featurizer, images: torch.Tensor) -> np.ndarray:
    """The dataset's (padded) tensors cut back to the shape its files hold (Fashion-MNIST: 28×28)."""
    left, right, top, bottom = featurizer.preprocessing.padding
    height, width = images.shape[-2:]
    return images[:, :, top:height - bottom, left:width - right].numpy()


def write_pngs(raw: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True)
    for index, image in enumerate(raw):
        Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(folder / f"{index:05d}.png")
    (folder / "zz-broken.png").write_bytes((folder / "00000.png").read_bytes()[:60])
    (folder / "notes.txt").write_text("not an image")


def vmcr2(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vmcr2_cli", *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def median_rate(count: int, work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(count / statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/embed-check"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    featurizer = load_featurizer(args.run)
    dataset = featurizer.dataset()
    raw = stored_images(featurizer, dataset.test_images[:args.images])
    write_pngs(raw, args.work / "pngs")

    vmcr2("eval", str(args.run), "--no-figures", "--save-features", str(args.work / "eval.npz"))
    command_seconds = vmcr2("embed", str(args.run), str(args.work / "pngs"), "--out", str(args.work / "e.npz"))
    embedded = np.load(args.work / "e.npz")
    evaluated = np.load(args.work / "eval.npz")["test_features"][:args.images]
    api = featurizer.embed(raw)
    fp32 = load_featurizer(args.run, device="cpu", precision="fp32")
    write_onnx(fp32, args.work / "f.onnx")
    write_torchscript(fp32, args.work / "f.pt")
    import onnxruntime

    (onnx_features,) = onnxruntime.InferenceSession(str(args.work / "f.onnx")).run(None, {"images": raw})
    with torch.no_grad():
        script_features = torch.jit.load(str(args.work / "f.pt"))(torch.from_numpy(raw)).numpy()
    fp32_features = fp32.embed(raw)

    def min_cos(a, b):
        return round(float((a * b).sum(1).min()), 7)

    batch = featurizer.preprocess(torch.from_numpy(raw))
    inputs = parse_inputs([str(args.work / "pngs")])
    size = featurizer.config.batch_size

    def forward_only():
        with torch.no_grad(), featurizer.precision.autocast:
            for start in range(0, len(batch), size):
                featurizer.model(batch[start:start + size])

    result = {
        "run": str(args.run), "images": len(raw), "device": str(featurizer.device),
        "precision": featurizer.precision.dtype, "batch_size": size,
        "agreement": {
            "embed_files_vs_eval_min_cos": min_cos(embedded["features"], evaluated),
            "embed_skipped": [Path(path).name for path in embedded["skipped"]],
            "api_raw_arrays_vs_embed_files_max_abs": float(np.abs(api - embedded["features"]).max()),
            "onnxruntime_vs_fp32_api_max_abs": float(np.abs(onnx_features - fp32_features).max()),
            "torchscript_vs_fp32_api_max_abs": float(np.abs(script_features - fp32_features).max()),
            "onnxruntime_vs_embed_min_cos": min_cos(onnx_features, embedded["features"]),
        },
        "images_per_second": {
            "forward_pass_alone": median_rate(len(raw), forward_only, args.repeats),
            "featurizer_on_uint8_arrays": median_rate(len(raw), lambda: featurizer.embed(raw), args.repeats),
            "embed_png_files": median_rate(len(raw), lambda: embed_inputs(featurizer, inputs, size), args.repeats),
            "vmcr2_embed_command": round(len(raw) / command_seconds, 1),
        },
        "vmcr2_embed_command_seconds": round(command_seconds, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

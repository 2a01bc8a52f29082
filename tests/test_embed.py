"""``vmcr2 embed`` and ``load_featurizer``: a trained featurizer on new images, with the run's own preprocessing.

Runs: the default profile on real-format Fashion-MNIST files (grey, 28×28 padded to 32×32) and a folder
dataset of RGB PNGs (fitted to image_size); both trained for one short epoch in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import vmcr2
from eval_fixtures import assert_one_error_line, copy_run
from fixtures_data import class_patterns, isolate_data, write_idx_dataset

from vmcr2_cli import load_featurizer
from vmcr2_cli.data import load_dataset
from vmcr2_cli.data.device_loader import Normalizer
from vmcr2_cli.data.idx import pad_to
from vmcr2_cli.data.preprocessing import Preprocessing
from vmcr2_cli.data.registry import preprocessing_of
from vmcr2_cli.errors import BadInput
from vmcr2_cli.featurizer import images as image_files

N_PNG = 40


def train(tmp: Path, *args: str) -> Path:
    code, _, err = vmcr2("train", "--runs-dir", str(tmp / "runs"), "--epochs", "1", "--batch-size", "100",
                         "--set", "eval_at_end=false", "--json", *args)
    assert code == 0, err
    return (tmp / "runs" / "latest").resolve()


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    """A default-profile run on Fashion-MNIST files, its data folder, and its test images as PNGs
    (the first N_PNG, 28×28 as the files hold them) beside a broken PNG and a text file."""
    tmp = tmp_path_factory.mktemp("fm")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_data(monkeypatch, tmp)
        data = write_idx_dataset(tmp / "data", "fashion-mnist", n_train=200, n_test=60)
        run = train(tmp, "--data-root", str(tmp / "data"), "--set", "feature_dim=16", "--set", "atoms_per_class=4")
    raw = read_idx_test_images(data)
    pngs = tmp / "pngs"
    pngs.mkdir()
    for index, image in enumerate(raw[:N_PNG]):
        Image.fromarray(image).save(pngs / f"{index:03d}.png")
    (pngs / "999-broken.png").write_bytes((pngs / "000.png").read_bytes()[:60])  # cut inside its data
    (pngs / "readme.txt").write_text("not an image")
    return {"tmp": tmp, "run": run, "data": tmp / "data", "raw": raw, "pngs": pngs}


def read_idx_test_images(folder: Path) -> np.ndarray:
    import gzip

    payload = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(payload[16:], dtype=np.uint8).reshape(-1, 28, 28)


def write_colour_folder(root: Path, per_class: int = 12, test_per_class: int = 5) -> Path:
    """An ImageFolder tree of RGB PNGs of another size than image_size (20×24), 3 classes."""
    for split, count, seed in (("train", per_class, 1), ("test", test_per_class, 2)):
        labels = np.repeat(np.arange(3), count)
        for index, (label, pattern) in enumerate(zip(labels, class_patterns(labels, 3, 3, 28, seed=seed))):
            folder = root / split / f"class_{'abc'[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pattern.transpose(1, 2, 0)).resize((20, 24)).save(folder / f"{index:04d}.png")
    return root


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rgb")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_data(monkeypatch, tmp)
        data = write_colour_folder(tmp / "images")
        run = train(tmp, "--set", "dataset=folder", "--set", f"data_root={data}", "--set", "image_size=16",
                    "--set", "feature_dim=12", "--set", "atoms_per_class=4", "--batch-size", "30")
    return {"tmp": tmp, "run": run, "data": data}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def embed(*args, capsys) -> tuple[int, str, str]:
    return vmcr2("embed", *map(str, args), capsys=capsys)


def eval_features(run: Path, out: Path, capsys, *extra) -> dict:
    code, _, err = vmcr2("eval", str(run), "--no-figures", "--save-features", str(out), *extra, capsys=capsys)
    assert code == 0, err
    return dict(np.load(out))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(1).min() / 1.0)


# ----------------------------------------------------------------------------- preprocessing

def test_the_preprocess_module_is_the_training_normalisation_of_the_padded_image(fm):
    dataset = load_dataset("fashion-mnist", data_root=fm["data"], download=False)
    preprocessing = preprocessing_of(dataset)
    assert preprocessing == Preprocessing((1, 28, 28), (2, 2, 2, 2), dataset.mean, dataset.std)
    raw = torch.from_numpy(fm["raw"][:8].copy())[:, None]
    expected = Normalizer(dataset.mean, dataset.std, 1, "cpu")(pad_to(raw, 32))
    module = preprocessing.module()
    assert torch.equal(module(raw), expected)
    assert torch.equal(module(pad_to(raw, 32)), expected)  # a dataset's padded tensors: normalised only


def test_meta_json_keeps_the_preprocessing_and_the_class_names(fm):
    meta = json.loads((fm["run"] / "meta.json").read_text())
    assert meta["preprocessing"]["shape"] == [1, 28, 28] and meta["preprocessing"]["padding"] == [2, 2, 2, 2]
    assert len(meta["class_names"]) == 10 and meta["class_names"][0] == "T-shirt/top"


# ----------------------------------------------------------------------------- embed on files and splits

def test_embedding_png_files_gives_eval_s_test_features_and_lists_the_broken_file(fm, offline, tmp_path, capsys):
    saved = eval_features(fm["run"], tmp_path / "eval.npz", capsys, "--data-root", str(fm["data"]))
    code, out, err = embed(fm["run"], fm["pngs"], "--out", tmp_path / "e.npz", capsys=capsys)
    assert code == 0, err
    result = np.load(tmp_path / "e.npz")
    assert result["features"].shape == (N_PNG, 16) and result["features"].dtype == np.float32
    assert min_cosine(result["features"], saved["test_features"][:N_PNG]) >= 0.9999
    assert list(result["paths"]) == [str(fm["pngs"] / f"{index:03d}.png") for index in range(N_PNG)]
    assert list(result["skipped"]) == [str(fm["pngs"] / "999-broken.png")]
    assert f"skipped {fm['pngs'] / '999-broken.png'}: not a readable image" in err
    assert "1 file(s) in the folders left out" in err and "labels" not in result.files
    assert f"wrote {tmp_path / 'e.npz'}: {N_PNG} image(s) × 16 features, 1 skipped" in out


def test_the_test_split_embeds_as_eval_computes_it_with_its_labels(fm, offline, tmp_path, capsys):
    saved = eval_features(fm["run"], tmp_path / "eval.npz", capsys, "--data-root", str(fm["data"]))
    code, out, err = embed(fm["run"], "test", "--out", tmp_path / "split", "--data-root", fm["data"], "--json",
                           capsys=capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["images"] == 60 and summary["out"] == str(tmp_path / "split.npz") and summary["labels"]
    result = np.load(tmp_path / "split.npz")
    assert np.array_equal(result["features"], saved["test_features"])
    assert np.array_equal(result["labels"], saved["test_labels"]) and result["paths"][7] == "test:7"


def test_an_imagefolder_tree_gives_labels_by_its_sorted_class_folders(rgb, offline, tmp_path, capsys):
    code, _, err = embed(rgb["run"], rgb["data"] / "test", "--out", tmp_path / "tree.npz", capsys=capsys)
    assert code == 0, err
    result = np.load(tmp_path / "tree.npz")
    assert list(result["label_names"]) == ["class_a", "class_b", "class_c"]
    assert list(result["labels"]) == [0] * 5 + [1] * 5 + [2] * 5
    assert "15 image(s) scaled to cover 16×16" in err  # the PNGs are 20×24, the run's images 16×16


def test_predict_matches_eval_s_nearest_subspace_and_needs_no_data_once_fitted(rgb, tmp_path, monkeypatch, capsys):
    run = copy_run(rgb["run"], tmp_path / "run")
    isolate_data(monkeypatch, tmp_path)
    code, out, err = vmcr2("eval", str(run), "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    accuracy = json.loads(out)["nearest_subspace_accuracy"]
    (run / "class-subspaces.npz").unlink()  # fitted again by embed on first use, then kept
    code, _, err = embed(run, rgb["data"] / "test", "--out", tmp_path / "p.npz", "--predict", capsys=capsys)
    assert code == 0, err
    assert (run / "class-subspaces.npz").is_file()
    first = np.load(tmp_path / "p.npz")
    assert np.mean(first["predicted"] == first["labels"]) == pytest.approx(accuracy, abs=1 / 15 + 1e-9)
    assert first["residuals"].shape == (15, 3) and np.array_equal(first["residuals"].argmin(1), first["predicted"])
    assert list(first["class_names"]) == ["class_a", "class_b", "class_c"]
    # Without the training files (the run's data_root now names nothing), the kept subspaces serve.
    config = (run / "config.toml").read_text().replace(str(rgb["data"]), str(tmp_path / "gone"))
    (run / "config.toml").write_text(config)
    code, _, err = embed(run, rgb["data"] / "test", "--out", tmp_path / "q.npz", "--predict", capsys=capsys)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "q.npz")["predicted"], first["predicted"])


def test_subspaces_of_another_state_of_the_checkpoint_are_not_used(rgb, tmp_path, monkeypatch):
    from vmcr2_cli.evaluation.subspace_file import save_class_subspaces, saved_class_subspaces
    from vmcr2_cli.runs import RunDir

    run = RunDir.open(copy_run(rgb["run"], tmp_path / "run"))
    save_class_subspaces(run, "last", torch.ones(3, 12, 4), global_step=5)
    assert saved_class_subspaces(run, "last", 5, 3, 12) is not None
    assert saved_class_subspaces(run, "last", 6, 3, 12) is None  # trained on since
    assert saved_class_subspaces(run, "last", 5, 4, 12) is None


# ----------------------------------------------------------------------------- the Python API

def test_load_featurizer_embeds_raw_arrays_pil_images_and_padded_tensors_alike(fm, offline, tmp_path, capsys):
    code, _, err = embed(fm["run"], fm["pngs"], "--out", tmp_path / "e.npz", capsys=capsys)
    assert code == 0, err
    from_files = np.load(tmp_path / "e.npz")["features"]
    featurizer = load_featurizer(fm["run"])
    raw = fm["raw"][:N_PNG]
    assert featurizer.preprocessing.shape == (1, 28, 28) and featurizer.feature_dim == 16
    assert np.array_equal(featurizer.embed(raw), from_files)  # (N, H, W)
    assert np.array_equal(featurizer.embed(raw[:, None]), from_files)  # (N, C, H, W)
    assert np.array_equal(featurizer.embed([Image.fromarray(image) for image in raw]), from_files)
    padded = pad_to(torch.from_numpy(raw.copy())[:, None], 32)
    assert np.array_equal(featurizer.embed(padded), from_files)
    assert np.allclose(np.linalg.norm(from_files, axis=1), 1, atol=1e-5)
    assert isinstance(featurizer.model, torch.nn.Module) and featurizer.preprocess(padded).shape == (N_PNG, 1, 32, 32)


def test_the_api_on_an_rgb_run_converts_grey_images_and_predicts(rgb, offline):
    featurizer = load_featurizer(rgb["run"], device="cpu", precision="fp32", data_root=str(rgb["data"]))
    assert featurizer.preprocessing.shape == (3, 16, 16) and featurizer.precision.dtype == "fp32"
    colour = np.stack([np.asarray(Image.open(path)) for path in sorted((rgb["data"] / "test").rglob("*.png"))])
    features = featurizer.embed(colour)  # (N, H, W, C) at 24×20: fitted with PIL one by one
    assert features.shape == (15, 12)
    grey = featurizer.embed(colour.mean(-1).astype(np.uint8))  # grey → RGB
    assert grey.shape == (15, 12) and np.isfinite(grey).all()
    prediction = featurizer.predict(colour)
    assert prediction.classes.shape == (15,) and set(prediction.names) <= {"class_a", "class_b", "class_c"}


def test_a_run_trained_before_meta_kept_the_preprocessing_reads_it_from_its_dataset(fm, offline, tmp_path):
    run = copy_run(fm["run"], tmp_path / "old")
    meta = json.loads((run / "meta.json").read_text())
    del meta["preprocessing"], meta["class_names"]
    (run / "meta.json").write_text(json.dumps(meta))
    old = load_featurizer(run, data_root=str(fm["data"]))
    assert old.preprocessing == load_featurizer(fm["run"]).preprocessing and len(old.class_names) == 10


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 28), dtype=np.float32), "images must be uint8"),
    (np.zeros((2, 5, 28, 28), dtype=np.uint8), "C = 1 or 3"),
    ([np.zeros((28, 28), dtype=np.uint8)], "a list must hold PIL images"),
])
def test_the_api_refuses_what_is_not_an_image_batch(images, message):
    preprocessing = Preprocessing((1, 28, 28), (2, 2, 2, 2), (0.2,), (0.3,))
    with pytest.raises(BadInput, match=message):
        image_files.as_image_batch(images, preprocessing)


# ----------------------------------------------------------------------------- bad input

def write_bad_files(folder: Path, good: Path) -> dict[str, str]:
    """A file of each kind that gives no image, and the reason embed gives for it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("a text file with an image's name")
    (folder / "truncated.png").write_bytes(good.read_bytes()[:-40])
    Image.new("L", (8000, 7000)).save(folder / "bomb.png")  # 56 megapixels in a few kB
    return {"empty.png": "not a readable image", "text.png": "not a readable image",
            "truncated.png": "not a readable image", "bomb.png": "above the cap of 50,000,000"}


def test_each_unreadable_file_is_skipped_with_its_reason_and_the_rest_embedded(fm, offline, tmp_path, capsys):
    reasons = write_bad_files(tmp_path / "bad", fm["pngs"] / "000.png")
    code, out, err = embed(fm["run"], tmp_path / "bad", fm["pngs"] / "001.png", "--out", tmp_path / "e.npz",
                           capsys=capsys)
    assert code == 0, err
    result = np.load(tmp_path / "e.npz")
    assert list(result["paths"]) == [str(fm["pngs"] / "001.png")]
    skipped = dict(zip(result["skipped"], result["skipped_reasons"]))
    for name, reason in reasons.items():
        assert reason in skipped[str(tmp_path / "bad" / name)]
        assert f"skipped {tmp_path / 'bad' / name}: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", ["nothing-readable", "no-such-path", "out-is-a-folder", "out-under-a-file",
                                  "no-checkpoint", "best-without-keep-best", "ambiguous-split", "batch-size"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(fm, offline, tmp_path, monkeypatch, capsys, case):
    run, out, inputs, extra = fm["run"], tmp_path / "e.npz", [fm["pngs"] / "000.png"], []
    if case == "nothing-readable":
        write_bad_files(tmp_path / "bad", fm["pngs"] / "000.png")
        inputs, message = [tmp_path / "bad"], "no image to embed"
    elif case == "no-such-path":
        inputs, message = [tmp_path / "nowhere"], "no such file or folder"
    elif case == "out-is-a-folder":
        out, message = tmp_path, "is a folder; name a file"
    elif case == "out-under-a-file":
        (tmp_path / "file").write_text("")
        out, message = tmp_path / "file" / "e.npz", "is a file, not a folder"
    elif case == "no-checkpoint":
        run = copy_run(fm["run"], tmp_path / "run")
        (run / "checkpoints" / "last.pt").unlink()
        message = "the run has no checkpoint yet"
    elif case == "best-without-keep-best":
        extra, message = ["--checkpoint", "best"], "the run keeps no best checkpoint"
    elif case == "ambiguous-split":
        monkeypatch.chdir(tmp_path)
        (tmp_path / "test").mkdir()
        inputs, message = ["test"], "write ./test for the path or :test for the split"
    else:
        extra, message = ["--batch-size", "0"], "--batch-size 0: must be at least 1"
    code, _, err = embed(run, *inputs, "--out", out, *extra, capsys=capsys)
    assert_one_error_line(code, err.splitlines()[-1] + "\n", message)
    assert "Traceback" not in err and not (tmp_path / "e.npz").exists()
    assert not list(tmp_path.glob(".e.npz.*"))


def test_an_unreadable_folder_is_one_line(fm, offline, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)  # chmod 000 does not stop root, who may run the tests
    code, _, err = embed(fm["run"], folder, "--out", tmp_path / "e.npz", capsys=capsys)
    assert_one_error_line(code, err, f"{folder}: cannot read the folder (Permission denied)")


def test_a_malformed_preprocessing_in_meta_json_is_one_line(fm, offline, tmp_path, capsys):
    run = copy_run(fm["run"], tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    meta["preprocessing"]["std"] = [0.0]
    (run / "meta.json").write_text(json.dumps(meta))
    code, _, err = embed(run, fm["pngs"] / "000.png", "--out", tmp_path / "e.npz", capsys=capsys)
    assert_one_error_line(code, err, "meta.json's preprocessing is inconsistent")

"""Damaged dataset files and a stalled download, through the real `vmcr2 train`: one line naming
the file and what is wrong, exit 2, no run directory; a stall times out instead of hanging."""

from __future__ import annotations

import gzip
import pickle
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_runner import vmcr2
from fixtures_data import isolate_data, write_cifar10, write_cifar100, write_idx_dataset, write_idx_file, \
    write_tinyimagenet


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def train_fails(tmp_path: Path, capsys, profile: str, *extra: str) -> str:
    """``vmcr2 train`` on the damaged data: exit 2, one line, no run directory; the line."""
    code, _, err = vmcr2("train", "--profile", profile, "--data-root", tmp_path / "data", "--runs-dir",
                         tmp_path / "runs", "--epochs", "1", *extra, capsys=capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()
    return err


def _cifar_batch(path: Path) -> dict:
    return pickle.loads(path.read_bytes(), encoding="bytes")


def _rewrite_batch(path: Path, change) -> None:
    record = _cifar_batch(path)
    change(record)
    path.write_bytes(pickle.dumps(record, protocol=2))


def test_a_truncated_cifar_archive(tmp_path, capsys):
    archive = write_cifar10(tmp_path / "data", n_train=100, n_test=20, archive=True)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    err = train_fails(tmp_path, capsys, "cifar10")
    assert f"{archive} cannot be read as a .tar.gz archive" in err


def test_cifar_labels_out_of_range(tmp_path, capsys):
    folder = write_cifar10(tmp_path / "data", n_train=100, n_test=20)
    _rewrite_batch(folder / "data_batch_3", lambda r: r[b"labels"].__setitem__(0, 10))
    err = train_fails(tmp_path, capsys, "cifar10")
    assert "data_batch_3" in err and "labels outside [0, 10)" in err


def test_cifar_image_and_label_counts_that_differ(tmp_path, capsys):
    folder = write_cifar10(tmp_path / "data", n_train=100, n_test=20)
    _rewrite_batch(folder / "test_batch", lambda r: r[b"labels"].pop())
    err = train_fails(tmp_path, capsys, "cifar10")
    assert "test_batch" in err and "20 images but 19 labels" in err


def test_a_cifar100_batch_that_is_not_a_pickle(tmp_path, capsys):
    folder = write_cifar100(tmp_path / "data", n_train=200, n_test=100)
    (folder / "train").write_bytes(np.random.default_rng(0).bytes(5000))
    err = train_fails(tmp_path, capsys, "cifar100", "--set", "atoms_per_class=1")
    assert "train is not a CIFAR python batch" in err


def test_a_truncated_tinyimagenet_archive(tmp_path, capsys):
    archive = write_tinyimagenet(tmp_path / "data", n_classes=5, per_class=4, archive=True)
    archive.write_bytes(archive.read_bytes()[:1000])
    err = train_fails(tmp_path, capsys, "tinyimagenet")
    assert f"{archive} cannot be read as a zip archive" in err


def test_a_corrupted_tinyimagenet_jpeg(tmp_path, capsys):
    folder = write_tinyimagenet(tmp_path / "data", n_classes=5, per_class=4)
    image = next((folder / "train").glob("*/images/*_2.JPEG"))
    image.write_bytes(b"\xff\xd8\xff" + bytes(200))  # a JPEG marker, then nothing a decoder can read
    err = train_fails(tmp_path, capsys, "tinyimagenet")
    assert image.name in err and "is not a readable image" in err


def test_idx_labels_out_of_range(tmp_path, capsys):
    folder = write_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=40, n_test=10)
    labels = np.zeros(40, np.uint8)
    labels[7] = 12
    write_idx_file(folder / "train-labels-idx1-ubyte.gz", labels)
    err = train_fails(tmp_path, capsys, "fashion-mnist")
    assert "train-labels-idx1-ubyte.gz has label 12, expected values below 10" in err


def test_an_idx_file_with_a_wrong_magic_number(tmp_path, capsys):
    folder = write_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=40, n_test=10)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(64)))
    err = train_fails(tmp_path, capsys, "fashion-mnist")
    assert "train-images-idx3-ubyte.gz is not an IDX file" in err and "magic number 00000d03" in err


def test_idx_image_and_label_counts_that_differ(tmp_path, capsys):
    folder = write_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=40, n_test=10)
    write_idx_file(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    err = train_fails(tmp_path, capsys, "fashion-mnist")
    assert "has 10 images but" in err and "has 9 labels" in err


class StallingServer:
    """An HTTP server on loopback that accepts connections and then stalls: before its answer,
    or after the headers and a first chunk of the body."""

    def __init__(self, after_headers: bool) -> None:
        self.after_headers = after_headers
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.after_headers:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + bytes(1000))

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize("after_headers", [False, True], ids=["before-the-answer", "mid-body"])
def test_a_stalled_download_times_out_instead_of_hanging(tmp_path, capsys, monkeypatch, after_headers):
    import urllib.request

    from vmcr2_cli.data import download, idx

    server = StallingServer(after_headers)
    try:
        monkeypatch.delenv("VMCR2_OFFLINE")
        monkeypatch.setattr(download, "urlopen", urllib.request.urlopen)  # the real one, to loopback only
        monkeypatch.setattr(download, "TIMEOUT_S", 0.5)
        monkeypatch.setattr(idx, "FASHION_MNIST_MIRRORS", (f"http://127.0.0.1:{server.port}/",))
        start = time.monotonic()
        code, _, err = vmcr2("train", "--profile", "fashion-mnist", "--runs-dir", tmp_path / "runs", capsys=capsys)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert code == 2 and err.count("\n") == 1, err
    assert "timed out" in err and f"127.0.0.1:{server.port}" in err
    assert elapsed < 10
    cache = tmp_path / "xdg-cache"
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no partial file left in the cache


"""Datasets read from files: IDX (MNIST / Fashion-MNIST), CIFAR-10 python batches, image folders.

Every file here is written by the test itself; only the Fashion-MNIST test reads the system copy
(skipped when the Debian package is absent).
"""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wganlab.data import available, load
from wganlab.data import idx as idx_mod
from wganlab.data.cifar10 import read_batch, safe_load_pickle
from wganlab.data.idx import parse_idx, read_idx, read_idx_pair, write_idx
from wganlab.errors import DatasetError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    """IDX bytes written by hand: magic 0 0 code ndim, big-endian uint32 dims, raw data."""
    return bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def tiny_images(n: int, h: int = 4, w: int = 3, offset: int = 0) -> np.ndarray:
    """Image i is filled with the value offset + i, so every image identifies itself."""
    return np.broadcast_to((offset + np.arange(n, dtype=np.uint8))[:, None, None], (n, h, w)).copy()


def write_mnist_dir(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, off in (("train", n_train, 0), ("t10k", n_test, 100)):
        imgs = idx_bytes(tiny_images(n, offset=off))
        labs = idx_bytes((np.arange(n) % 10).astype(np.uint8))
        for kind, data, nd in (("images", imgs, 3), ("labels", labs, 1)):
            p = folder / f"{prefix}-{kind}-idx{nd}-ubyte{suffix}"
            p.write_bytes(gzip.compress(data) if gz else data)


# ---------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_read_back_exactly(tmp_path, gz):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    raw = idx_bytes(a)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    b = read_idx(p, magic=0x00000803)
    assert b.dtype == np.uint8 and b.shape == (7, 5, 3)
    assert np.array_equal(a, b)
    # other element types, big-endian on disk
    f = rng.standard_normal((4, 2)).astype(">f4")
    assert np.array_equal(parse_idx(idx_bytes(f, 0x0D)), f.astype(np.float32))
    i = np.array([1, -2, 70000], dtype=">i4")
    assert np.array_equal(parse_idx(idx_bytes(i, 0x0C)), [1, -2, 70000])


def test_write_idx_round_trip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("w.idx", "w.idx.gz"):
        p = write_idx(tmp_path / name, a)
        assert p.read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
        assert np.array_equal(read_idx(p), a)
    assert (tmp_path / "w.idx").read_bytes() == idx_bytes(a)


def test_idx_wrong_magic(tmp_path):
    labels = tmp_path / "labels"
    labels.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError, match=r"wrong IDX magic number 0x00000801, expected 0x00000803") as e:
        read_idx(labels, magic=0x00000803)
    assert str(labels) in str(e.value)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(DatasetError, match=r"junk: not an IDX file \(magic number 0x12345678\)"):
        read_idx(junk)
    with pytest.raises(DatasetError, match="too short"):
        parse_idx(b"\x00\x00", "x")


def test_idx_truncated_or_overlong_data(tmp_path):
    raw = idx_bytes(tiny_images(10))
    p = tmp_path / "short"
    p.write_bytes(raw[:-5])
    with pytest.raises(DatasetError,
                       match=r"short: truncated data: header says 10x4x3 \(120 bytes\), file holds 115"):
        read_idx(p)
    p.write_bytes(raw[:10])
    with pytest.raises(DatasetError, match="truncated IDX header"):
        read_idx(p)
    p.write_bytes(raw + b"xyz")
    with pytest.raises(DatasetError, match="3 unexpected bytes after the 10x4x3 data"):
        read_idx(p)


def test_idx_truncated_and_corrupt_gzip(tmp_path):
    gz = gzip.compress(idx_bytes(np.random.default_rng(1).integers(0, 256, (50, 8, 8), dtype=np.uint8)))
    p = tmp_path / "t.gz"
    p.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DatasetError, match="truncated gzip") as e:
        read_idx(p)
    assert str(p) in str(e.value)
    bad = bytearray(gz)
    bad[-8:-4] = bytes(4)  # wrong CRC
    p.write_bytes(bytes(bad))
    with pytest.raises(DatasetError, match="corrupt gzip") as e:
        read_idx(p)
    assert str(p) in str(e.value)
    with pytest.raises(DatasetError, match="file not found"):
        read_idx(tmp_path / "missing.gz")


def test_idx_pair_count_mismatch(tmp_path):
    im, lab = tmp_path / "im", tmp_path / "lab"
    im.write_bytes(idx_bytes(tiny_images(5)))
    lab.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DatasetError, match=r"5 images but .* has 4 labels"):
        read_idx_pair(im, lab)


@pytest.mark.parametrize("layout", ["mnist", ".", "MNIST/raw"])
def test_mnist_from_data_root(tmp_path, layout):
    write_mnist_dir(tmp_path / layout, gz=layout != ".")
    tr = load("mnist", tmp_path)
    assert tr.x.shape == (12, 1, 4, 3) and tr.x.dtype == torch.float32
    # pixel p -> p / 127.5 - 1, exactly
    assert torch.equal(tr.x[:, 0, 0, 0], torch.arange(12, dtype=torch.float32) / 127.5 - 1)
    assert torch.equal(tr.labels, torch.arange(12) % 10)
    te = load("mnist:test", tmp_path)
    assert te.x.shape == (5, 1, 4, 3)
    assert torch.equal(te.x[:, 0, 0, 0], (100 + torch.arange(5, dtype=torch.float32)) / 127.5 - 1)
    assert "found in" in available(tmp_path)["mnist"]


def test_idx_subset_seeded_no_duplicates_resized(tmp_path):
    write_mnist_dir(tmp_path / "mnist", n_train=200)
    a = load("mnist:n=50:seed=3", tmp_path)
    ids = torch.round((a.x[:, 0, 0, 0] + 1) * 127.5).long()
    assert len(torch.unique(ids)) == 50  # no image twice
    assert torch.equal(a.labels, ids % 10)  # labels follow their images
    assert torch.equal(load("mnist:n=50:seed=3", tmp_path).x, a.x)
    assert not torch.equal(load("mnist:n=50:seed=4", tmp_path).x, a.x)
    b = load("mnist:n=6:size=8", tmp_path)
    assert b.x.shape == (6, 1, 8, 8) and b.x.min() >= -1 and b.x.max() <= 1
    with pytest.raises(DatasetError, match="n=500 but the train split has only 200"):
        load("mnist:n=500", tmp_path)


def test_missing_idx_datasets_say_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as e:
        load("mnist", tmp_path)
    assert "--data-root" in str(e.value) and str(tmp_path) in str(e.value)
    monkeypatch.setitem(idx_mod.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "nowhere"])
    with pytest.raises(DatasetError) as e:
        load("fashion-mnist", tmp_path)
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-root" in msg
    assert "apt-get" in available(tmp_path)["fashion-mnist"]


def test_fashion_mnist_data_root_wins_over_system(tmp_path):
    write_mnist_dir(tmp_path / "fashion-mnist")
    ds = load("fashion-mnist", tmp_path)
    assert ds.x.shape == (12, 1, 4, 3)
    assert ds.meta["files"][0].startswith(str(tmp_path))


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_system_copy():
    tr = load("fashion-mnist")
    assert tr.x.shape == (60000, 1, 28, 28) and tr.x.dtype == torch.float32
    assert tr.x.min().item() == -1.0 and tr.x.max().item() == 1.0
    assert torch.equal(torch.bincount(tr.labels), torch.full((10,), 6000))  # balanced classes
    te = load("fashion-mnist:test")
    assert te.x.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(te.labels), torch.full((10,), 1000))
    sub = load("fashion-mnist:train:n=500:size=32")
    assert sub.x.shape == (500, 1, 32, 32) and sub.x.min() >= -1 and sub.x.max() <= 1
    assert sub.meta["n_split"] == 60000


# ---------------------------------------------------------------------------------------------- CIFAR-10


def _batch(n: int, seed: int, labels_as_array: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    return {b"batch_label": b"batch %d" % seed, b"labels": labels if labels_as_array else labels.tolist(),
            b"data": data, b"filenames": [b"img%d.png" % i for i in range(n)]}


def write_cifar(root: Path) -> tuple[list[dict], dict]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = [_batch(3, i) for i in range(1, 6)]
    for i, b in enumerate(train, 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(b, protocol=2))
    test = _batch(4, 99, labels_as_array=True)
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=4))
    return train, test


def test_cifar_fake_batches_load_exactly(tmp_path):
    train, test = write_cifar(tmp_path)
    ds = load("cifar10", tmp_path)
    assert ds.x.shape == (15, 3, 32, 32) and ds.x.dtype == torch.float32
    data = np.concatenate([b[b"data"] for b in train])
    # row layout: 1024 red, 1024 green, 1024 blue, each row-major 32x32
    i, r, c = 7, 5, 30
    for ch in range(3):
        p = np.float32(data[i, ch * 1024 + r * 32 + c])
        assert ds.x[i, ch, r, c].item() == p / np.float32(127.5) - np.float32(1)
    assert torch.equal(ds.x, torch.from_numpy(data.reshape(15, 3, 32, 32)).float() / 127.5 - 1)
    assert ds.labels.tolist() == [lab for b in train for lab in b[b"labels"]]
    te = load("cifar10:test:size=16", tmp_path)
    assert te.x.shape == (4, 3, 16, 16)
    assert te.labels.tolist() == test[b"labels"].tolist()
    assert "found in" in available(tmp_path)["cifar10"]


def test_cifar_protocol5_and_str_keys(tmp_path):
    b = {"data": np.zeros((2, 3072), np.uint8), "labels": np.array([3, 4])}
    p = tmp_path / "b5"
    p.write_bytes(pickle.dumps(b, protocol=5))
    x, y = read_batch(p)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 4]


class _Payload:
    """Pickles as a call to ``func(arg)``: a file appears if the call ever runs."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "builtins.exec", "protocol0"])
def test_cifar_malicious_pickle_is_refused_without_running(tmp_path, attack):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    if attack == "os.system":
        payload = _Payload(os.system, f"touch {marker}")
    elif attack == "builtins.eval":
        payload = _Payload(eval, f"open({str(marker)!r}, 'w').close()")
    elif attack == "builtins.exec":
        payload = _Payload(exec, f"open({str(marker)!r}, 'w').close()")
    if attack == "protocol0":
        blob = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    else:
        blob = pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2)
    (folder / "test_batch").write_bytes(blob)
    with pytest.raises(DatasetError, match="refusing to load pickle") as e:
        load("cifar10:test", tmp_path)
    assert "test_batch" in str(e.value)
    assert not marker.exists()


class _Reduced:
    """Pickles as ``func(*args)``, then ``state`` given to its ``__setstate__`` (None: no state)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_CORE = np._core if hasattr(np, "_core") else np.core


def _array_blob(spec="u1", flags=0, data=bytes(2 * 3072), subtype=np.ndarray, py2=False) -> bytes:
    """A protocol-2 batch whose ``data`` is the ``(2, 3072)`` array pickle numpy writes (``_reconstruct``, then the
    state ``(1, shape, dtype, fortran, bytes)``, the dtype ``numpy.dtype(spec, False, True)`` with the state ``(3,
    '|', None, None, None, -1, -1, flags)``); ``py2``: as Python 2's numpy wrote CIFAR-10 (bytes for its strs, 0 and
    1 for the booleans), read with ``encoding="bytes"``."""
    dtype = _Reduced(np.dtype, (spec.encode(), 0, 1) if py2 else (spec, False, True),
                     (3, b"|" if py2 else "|", None, None, None, -1, -1, flags))
    array = _Reduced(_CORE.multiarray._reconstruct, (subtype, (0,), b"b"), (1, (2, 3072), dtype, False, data))
    return pickle.dumps({b"data": array, b"labels": [1, 2]}, protocol=2)


def test_cifar_array_pickles_numpy_writes_load_python_2_style_too(tmp_path):
    p = tmp_path / "b"
    for py2 in (False, True):
        p.write_bytes(_array_blob(data=bytes(range(256)) * 24, py2=py2))
        x, y = read_batch(p)
        assert x.dtype == np.uint8 and x.reshape(2, 3072)[1, 5] == (3072 + 5) % 256 and y.tolist() == [1, 2]


@pytest.mark.parametrize(("kw", "match"), [
    ({"flags": 63}, "uint8 dtype state numpy never writes"),  # numpy's setstate would mark uint8 as holding objects
    ({"spec": "O"}, "object dtype, where a CIFAR-10 batch holds plain numbers"),
    ({"data": bytes(100)}, "100 bytes for a uint8 array of shape"),
    ({"subtype": np.dtype}, "an array of a type other than numpy.ndarray"),
])
def test_cifar_array_pickles_numpy_never_writes_are_refused(tmp_path, kw, match):
    """Arrays are made from the pickle's bytes only once its dtype, dtype state and length check out: numpy's own
    ``dtype.__setstate__`` takes any flags (a uint8 dtype "holding objects" reached numpy's internal errors)."""
    p = tmp_path / "b"
    p.write_bytes(_array_blob(**kw))
    with pytest.raises(DatasetError, match=match):
        read_batch(p)


def test_cifar_pickle_memo_index_beyond_the_file_is_refused(tmp_path):
    """The unpickler sizes and clears its memo for the largest index it meets (9 random bytes naming index 10^9
    asked for 16 GB and killed CI): an index beyond the file's length is refused before unpickling."""
    p = tmp_path / "test_batch"
    p.write_bytes(b"\x80\x02N" + b"r" + struct.pack("<I", 50_000_000) + b".")
    with pytest.raises(DatasetError, match="refusing to load pickle: memo index 50000000 beyond its 9 bytes"):
        read_batch(p)


@pytest.mark.parametrize(("obj", "match"), [
    ({b"labels": [1]}, "missing key 'data'"),
    ({b"data": np.zeros((1, 3072), np.uint8)}, "missing key 'labels'"),
    ({b"data": np.zeros((1, 100), np.uint8), b"labels": [1]}, "N x 3072 uint8"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, "N x 3072 uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images but 1 labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, "labels outside 0..9"),
    ([1, 2, 3], "expected a dict"),
])
def test_cifar_bad_batches(tmp_path, obj, match):
    p = tmp_path / "batch"
    p.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DatasetError, match=match):
        read_batch(p)


def test_cifar_garbage_and_missing(tmp_path):
    p = tmp_path / "garbage"
    p.write_bytes(b"\x80\x02}q\x00(X\x04")  # truncated pickle
    with pytest.raises(DatasetError, match="garbage: not a readable pickle"):
        safe_load_pickle(p)
    with pytest.raises(DatasetError) as e:
        load("cifar10", tmp_path)
    assert "--data-root" in str(e.value) and "data_batch_1" in str(e.value)
    with pytest.raises(DatasetError, match="no --data-root"):
        load("cifar10")


# ---------------------------------------------------------------------------------------------- folders


def _save(path: Path, arr: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def _solid(h: int, w: int, rgb) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def test_folder_sorted_shapes_colour_and_grey(tmp_path):
    d = tmp_path / "imgs"
    _save(d / "b.png", _solid(30, 40, (255, 0, 128)))
    _save(d / "a.png", _solid(30, 40, (0, 255, 64)))
    _save(d / "sub" / "c.jpg", _solid(40, 30, (100, 100, 100)), "JPEG")
    _save(d / ".hidden.png", _solid(5, 5, (1, 2, 3)))
    (d / "notes.txt").write_text("not an image")
    ds = load(f"folder:path={d}:holdout=0:size=16")
    assert ds.x.shape == (3, 3, 16, 16) and ds.labels is None and ds.value_range == (-1.0, 1.0)
    # sorted by relative path: a.png, b.png, sub/c.jpg; solid colours map to p / 127.5 - 1
    expect_a = torch.tensor([0, 255, 64]) / 127.5 - 1
    expect_b = torch.tensor([255, 0, 128]) / 127.5 - 1
    assert torch.allclose(ds.x[0].mean(dim=(1, 2)), expect_a, atol=1e-6)
    assert torch.allclose(ds.x[1].mean(dim=(1, 2)), expect_b, atol=1e-6)
    assert torch.allclose(ds.x[1], expect_b[:, None, None].expand(3, 16, 16), atol=1e-6)
    assert torch.allclose(ds.x[2], torch.full((3, 16, 16), 100 / 127.5 - 1), atol=3 / 127.5)  # JPEG
    grey = load(f"folder:path={d}:holdout=0:size=8:channels=1")
    assert grey.x.shape == (3, 1, 8, 8)
    assert torch.allclose(grey.x[2], torch.full((1, 8, 8), 100 / 127.5 - 1), atol=3 / 127.5)
    assert ds.meta["n_files"] == 3


def test_folder_centre_crop(tmp_path):
    img = np.full((30, 40, 3), 255, np.uint8)  # white, with a black 10x10 centre square
    img[10:20, 15:25] = 0
    _save(tmp_path / "x.png", img)
    tight = load(f"folder:path={tmp_path}:holdout=0:size=5:crop=1/3", seed=0)  # 10 px of the 30 px side
    assert tight.x.shape == (1, 3, 5, 5)
    assert torch.allclose(tight.x, torch.full_like(tight.x, -1.0))
    full = load(f"folder:path={tmp_path}:holdout=0:size=30")  # square crop of the short side, no resize
    expect = torch.from_numpy(img[:, 5:35].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    assert torch.equal(full.x[0], expect)


def test_folder_ffhq_reference_crop(tmp_path):
    img = np.full((128, 128, 3), 255, np.uint8)
    img[19:109, 19:109] = 0  # the central 90x90 is black
    for i in range(3):
        _save(tmp_path / "ffhq" / "00000" / f"{i:05d}.png", img)
    ds = load("ffhq:holdout=0", tmp_path)
    assert ds.x.shape == (3, 3, 64, 64)
    assert torch.allclose(ds.x, torch.full_like(ds.x, -1.0))
    assert ds.spec == "ffhq:train:holdout=0.0:seed=0"
    with pytest.raises(DatasetError, match="--data-root"):
        load("ffhq")


def test_folder_celeba_from_data_root_directly(tmp_path):
    for i in range(7):
        _save(tmp_path / f"{i:06d}.jpg", _solid(218, 178, (10 * i, 0, 0)), "JPEG")
    ds = load("celeba:size=32", tmp_path)
    assert ds.x.shape == (6, 3, 32, 32)  # 7 images, round(7/6) = 1 held out
    assert load("celeba:test:size=32", tmp_path).x.shape == (1, 3, 32, 32)
    assert "images found" in available(tmp_path)["celeba"]


def test_folder_subset_and_disjoint_splits(tmp_path):
    for i in range(24):
        _save(tmp_path / f"{i:02d}.png", np.full((6, 6), 10 * i, np.uint8))
    base = f"folder:{{}}path={tmp_path}:size=6:channels=1"

    def ids(ds):
        return torch.round((ds.x[:, 0, 0, 0] + 1) * 127.5 / 10).long().tolist()

    tr, te = ids(load(base.format(""))), ids(load(base.format("test:") + ":seed=11"))
    assert len(te) == 4 and len(tr) == 20
    assert not set(tr) & set(te) and sorted(tr + te) == list(range(24))
    base = base.format("")
    a = ids(load(base + ":n=8:seed=1"))
    assert len(set(a)) == 8 and set(a) <= set(tr)
    assert a == ids(load(base + ":n=8:seed=1"))
    assert a != ids(load(base + ":n=8:seed=2"))


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no PNG/JPEG images"):
        load(f"folder:path={tmp_path}")
    with pytest.raises(DatasetError, match="not a folder"):
        load(f"folder:path={tmp_path / 'missing'}")
    _save(tmp_path / "good.png", _solid(8, 8, (1, 2, 3)))
    (tmp_path / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match=r"bad\.png: cannot read image"):
        load(f"folder:path={tmp_path}:holdout=0")
    (tmp_path / "bad.png").unlink()
    buf = (tmp_path / "good.png").read_bytes()
    (tmp_path / "half.png").write_bytes(buf[: len(buf) // 2])
    with pytest.raises(DatasetError, match=r"half\.png: cannot read image"):
        load(f"folder:path={tmp_path}:holdout=0")

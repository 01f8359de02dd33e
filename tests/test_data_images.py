"""Image grids (wganlab.images) and dataset previews (wganlab.data.save_preview)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wganlab import images as images_mod
from wganlab.data import load, save_preview
from wganlab.errors import InputError
from wganlab.images import image_grid, save_image_grid, to_uint8


@pytest.mark.parametrize(("n", "nrow", "pad", "c", "h", "w", "size"), [
    (10, 4, 2, 1, 5, 7, (4 * 9 + 2, 3 * 7 + 2)),
    (3, 8, 2, 3, 4, 4, (3 * 6 + 2, 1 * 6 + 2)),  # fewer images than nrow: one short row
    (64, 8, 2, 1, 32, 32, (274, 274)),
    (6, 3, 0, 3, 2, 5, (15, 4)),
])
def test_grid_size_and_mode(n, nrow, pad, c, h, w, size):
    img = image_grid(torch.zeros(n, c, h, w), nrow=nrow, pad=pad)
    assert img.size == size  # PIL: (width, height)
    assert img.mode == ("L" if c == 1 else "RGB")


def test_grid_pixel_values_and_placement():
    n, h, w, pad, nrow = 5, 3, 4, 2, 2
    x = torch.empty(n, 1, h, w)
    vals = [-1.0, 1.0, 0.0, 0.5, 3.0]  # 3.0 is clamped to the top of the range
    for k, v in enumerate(vals):
        x[k] = v
    a = np.asarray(image_grid(x, nrow=nrow, pad=pad))
    expect = [0, 255, 128, 191, 255]  # round((v + 1) / 2 * 255), halves up
    for k, e in enumerate(expect):
        r, c = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        assert (a[top:top + h, left:left + w] == e).all(), k
    assert a[0, 0] == 128 and a[pad + h, pad] == 128  # padding: mid grey
    assert a[-1, -1] == 128  # the empty sixth slot is padding too


def test_grid_rgb_channels_and_value_range():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0], x[0, 1], x[0, 2] = 1.0, -1.0, 0.0
    assert tuple(np.asarray(image_grid(x, pad=0))[0, 0]) == (255, 0, 128)
    y = torch.full((1, 1, 2, 2), 0.5)
    assert np.asarray(image_grid(y, value_range=(0, 1), pad=0))[0, 0] == 128
    assert torch.equal(to_uint8(torch.tensor([-2.0, -1.0, 1.0, 2.0])), torch.tensor([0, 0, 255, 255],
                                                                                   dtype=torch.uint8))
    # numpy input and (N, H, W) grey input
    g = image_grid(np.zeros((2, 3, 3), np.float32), pad=1)
    assert g.mode == "L" and g.size == (2 * 4 + 1, 5)


@pytest.mark.parametrize(("x", "kw", "match"), [
    (torch.zeros(2, 2, 4, 4), {}, "C = 1 or 3"),
    (torch.full((1, 1, 2, 2), float("nan")), {}, "NaN"),
    (torch.zeros(1, 1, 2, 2), {"nrow": 0}, "nrow"),
    (torch.zeros(1, 1, 2, 2), {"pad": -1}, "pad"),
    (torch.zeros(1, 1, 2, 2), {"value_range": (1, 1)}, "lo < hi"),
])
def test_grid_rejects_bad_input(x, kw, match):
    with pytest.raises(InputError, match=match):
        image_grid(x, **kw)


def test_save_image_grid_atomic(tmp_path, monkeypatch):
    x = torch.linspace(-1, 1, 4 * 3 * 6 * 6).reshape(4, 3, 6, 6)
    out = tmp_path / "sub" / "grid.png"
    p = save_image_grid(x, out, nrow=2)
    assert p == out and sorted(f.name for f in out.parent.iterdir()) == ["grid.png"]
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), np.asarray(image_grid(x, nrow=2)))
    # overwriting works and leaves no temporary file
    save_image_grid(-x, out, nrow=4)
    assert sorted(f.name for f in out.parent.iterdir()) == ["grid.png"]
    with Image.open(out) as im:
        assert im.size == (4 * 8 + 2, 8 + 2)
    before = out.read_bytes()

    def boom(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(images_mod.Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_image_grid(x, out)
    assert out.read_bytes() == before  # the old file is intact
    assert sorted(f.name for f in out.parent.iterdir()) == ["grid.png"]  # temp removed


def test_save_image_grid_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="extension"):
        save_image_grid(torch.zeros(1, 1, 2, 2), tmp_path / "grid.xyz")
    assert list(tmp_path.iterdir()) == []


def test_preview_image_dataset(tmp_path):
    ds = load("squares")
    p = save_preview(ds, tmp_path / "sq.png", n=64)
    with Image.open(p) as im:
        assert im.size == (8 * 34 + 2, 8 * 34 + 2) and im.mode == "L"
        a = np.asarray(im)
    assert set(np.unique(a)) <= {0, 128, 255}  # black, padding, white
    small = save_preview(load("digits:n=5"), tmp_path / "d.png", n=64)  # fewer images than n
    with Image.open(small) as im:
        assert im.size == (3 * 10 + 2, 2 * 10 + 2)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["d.png", "sq.png"]


@pytest.mark.parametrize("spec", ["gauss8:n=300", "gauss:d=5:n=100", "gauss:d=1:n=50"])
def test_preview_vector_dataset(tmp_path, spec):
    p = save_preview(load(spec), tmp_path / "scatter.png")
    with Image.open(p) as im:
        assert im.size == (500, 500)
        a = np.asarray(im.convert("L"))
    assert a.min() < 128  # something was drawn
    assert [f.name for f in tmp_path.iterdir()] == ["scatter.png"]


def test_package_import_is_light():
    code = ("import sys, wganlab.data, wganlab.images; "
            "bad = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr

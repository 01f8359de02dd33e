"""The bench: every case at a tiny size (in process and through the CLI), its baselines against independent
oracles, one-line errors. Values and certificates are asserted; times never are."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.spatial.distance
import scipy.stats
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose

from wganlab import bench
from wganlab.bench import timing
from wganlab.cli import main
from wganlab.errors import ConfigError
from wganlab.ot.sliced import random_projections

TINY = {
    "w1-square": {"n": "120"},
    "w1-batch": {"m": "16", "ns": "150,230"},
    "w1-large": {"n": "150"},
    "w1-weighted": {"n": "150"},
    "patch-swd": {"n": "20", "n_projections": "8"},
    "patch-swd-reuse": {"n": "20", "batches": "3", "baseline_batches": "2", "n_projections": "8"},
    "patch-swd-train": {"n": "20", "batches": "2", "baseline_batches": "2", "n_projections": "8"},
    "ot-means": {"m": "6", "n": "90", "iters": "4"},
}
#: largest relative difference from the baseline each case may show
TOL = {"w1-square": 1e-10, "w1-batch": 1e-10, "w1-large": None, "w1-weighted": 1e-10, "patch-swd": 1e-5,
       "patch-swd-reuse": 1e-5, "patch-swd-train": 1e-5, "ot-means": 1e-8}


#: the train-* cases run here (each objective family once; tests/test_train_step.py checks every pair)
TINY_TRAIN = {name: {"sides": "16", "iters": "1", "n": "100"} for name in
              ("train-wgan-gp-cnn-gap", "train-ctransform-fc", "train-sinkhorn", "train-assignment-fc")}


#: cases outside the default selection, run here at a tiny size (their own test)
TINY_EXTRA = {"w1-low-dim": {"n": "150"}, "patch-swd-64": {"n": "20", "n_projections": "8"},
              "ot-means-authors": {"m": "6", "n": "90", "iters": "2", "inner": "3"}}


def test_tiny_sizes_cover_every_case():
    assert set(TINY) == set(TOL) == {n for n in bench.CASES if not n.startswith("train-")} - set(TINY_EXTRA)
    assert set(TINY_TRAIN) | set(TINY_EXTRA) <= set(bench.CASES)


def test_the_default_selection_is_a_train_subset_plus_every_other_case():
    default = set(bench.resolve_sizes(None))
    train = {n for n in bench.CASES if n.startswith("train-")}
    assert default - train == set(TINY) and 0 < len(default & train) < len(train)
    assert set(bench.resolve_sizes(None, full=True)) == set(bench.CASES)
    assert len(train) == 6 * 4 + 1  # every objective with every critic; Sinkhorn has none


@pytest.fixture(scope="module")
def tiny_rows():
    return bench.run_bench(list(TINY), overrides=TINY, isolate=False)


def test_train_cases_agree_with_the_plain_loop():
    rows = bench.run_bench(list(TINY_TRAIN), overrides=TINY_TRAIN, isolate=False)
    assert [r["case"] for r in rows] == list(TINY_TRAIN)
    for r in rows:
        assert r["status"] == "ok" and r["size"] == "16x16, 1 it." and r["wganlab_s"] > 0, r
        if r["baseline"] == "none":  # Sinkhorn and the assignment method: wganlab only
            assert r["baseline_s"] is None and "no plain loop" in r["note"]
        else:
            assert r["baseline_s"] > 0 and r["ratio"] == pytest.approx(r["baseline_s"] / r["wganlab_s"])
            # float32: Adam's first steps move near-zero gradients by about lr, so rounding shows at ~1e-3;
            # tests/test_train_step.py checks the equality exactly, in float64
            assert_allclose(r["value_diff"], 0.0, atol=1e-2, err_msg=r["case"])


def test_every_case_agrees_with_its_baseline(tiny_rows):
    assert [r["case"] for r in tiny_rows] == ["w1-square", "w1-batch", "w1-batch", "w1-large", "w1-weighted",
                                              "w1-weighted", "patch-swd", "patch-swd-reuse", "patch-swd-train",
                                              "ot-means"]
    for r in tiny_rows:
        assert set(k for k, _ in bench.COLUMNS) <= set(r), r["case"]
        assert r["status"] == "ok", r
        assert r["wganlab_s"] > 0
        if TOL[r["case"]] is None:
            assert r["baseline_s"] is None and r["value_diff"] is None and "16 n^2 bytes" in r["note"]
        else:
            assert r["baseline_s"] > 0 and r["ratio"] == pytest.approx(r["baseline_s"] / r["wganlab_s"])
            assert_allclose(r["value_diff"], 0.0, atol=TOL[r["case"]], err_msg=r["case"])
        if r["case"].startswith("w1"):
            assert_allclose(r["gap_rel"], 0.0, atol=1e-9)  # the certificate of an exact solution
            assert r["gemm_s"] > 0 and "of every pair alone" in r["note"]
            assert ("int8 grid bounds" in r["note"]) == (r["case"] != "w1-weighted")  # 8-bit images, Gaussians


def test_the_warm_up_loads_every_kernel_an_exact_case_uses():
    """After the harness's warm-up, the w1-batch and w1-square solves compile no numba kernel (compiling one
    inside a timed call cost w1-batch 2-6 s in a fresh clone). In a new process: this one has them all."""
    code = """
import numba
from wganlab.bench import harness
from wganlab.bench.timing import PairedTimer
from wganlab.ot import wasserstein
from wganlab.ot.exact import auction, blocks, grid, ssp
def signatures():
    return {(m.__name__, k): set(map(str, f.signatures)) for m in (auction, blocks, grid, ssp)
            for k, f in vars(m).items() if isinstance(f, numba.core.registry.CPUDispatcher)}
harness._warm_up()
before = signatures()
ctx = PairedTimer()
wasserstein(ctx.images("test", 64), ctx.images("train", 10000))
wasserstein(ctx.images("test", 300), ctx.images("train", 300))
print(sorted(k for k, v in signatures().items() if v - before[k]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_pattern_selects_the_cases_it_matches():
    train = [n for n in bench.CASES if n.startswith("train-")]
    assert list(bench.resolve_sizes(["train-*"], full=True)) == train
    assert list(bench.resolve_sizes(["w1-batch", "train-wgan-gp-*"])) == ["w1-batch", *[n for n in train
                                                                              if n.startswith("train-wgan-gp-")]]
    with pytest.raises(ConfigError, match="no bench case matches 'nothing-\\*'"):
        bench.resolve_sizes(["nothing-*"])


def test_low_dimensional_case_rows_are_certified_and_right():
    """w1-low-dim: one row per data set and p, each certified, its value POT's on the same points."""
    from wganlab.bench.cases import LOW_DIM_SETS, low_dimensional_points
    from wganlab.ot import wasserstein

    rows = bench.run_bench(["w1-low-dim"], overrides={"w1-low-dim": TINY_EXTRA["w1-low-dim"]}, isolate=False)
    names = ["circle", "plane", "line+1e-3", "line+1e-6", "line+1e-6 shifted by 0.3", "line+1e-4 shifted by 0.3",
             "line+1e-2 shifted by 0.3", "line+1e-1 shifted by 0.3", "gauss10 shifted by 10"]
    assert [r["size"] for r in rows] == [f"{k}, 150 x 150, p = {p}" for k in names for p in (1, 2)]
    for r, (kind, shift) in zip(rows, [s for s in LOW_DIM_SETS for _ in (1, 2)], strict=True):
        assert r["status"] == "ok" and r["baseline_s"] > 0 and r["value_diff"] is None
        assert_allclose(r["gap_rel"], 0.0, atol=1e-9)
        p = int(r["size"][-1])
        x, y = low_dimensional_points(kind, 150, 1), low_dimensional_points(kind, 150, 2, shift)
        assert r["value"] == pytest.approx(wasserstein(x, y, p=p, engine="pot").value, rel=1e-9)
    x, y = low_dimensional_points("line+1e-6", 150, 1), low_dimensional_points("line+1e-6", 150, 2, 0.3)
    assert np.linalg.norm(y.mean(0) - x.mean(0)) == pytest.approx(0.3, abs=0.1)  # the shift moved the sample


def test_authors_setting_cases_agree_with_their_baselines():
    """patch-swd-64 and ot-means-authors: each row agrees with its plain baseline (the direct step against
    all n, which has none, with wganlab's patch SWD called directly); the authors' times are quoted."""
    from wganlab.ot.patches import patch_swd
    from wganlab.ot.sliced import random_projections

    names = ["patch-swd-64", "ot-means-authors"]
    rows = bench.run_bench(names, overrides={k: TINY_EXTRA[k] for k in names}, isolate=False)
    assert [r["size"] for r in rows] == ["patch SW1, 64 vs 20", "location-specific patch SW1, 64 vs 20",
                                         "direct step, 64 vs 64", "direct step, 64 vs 20 (default max_elements)",
                                         "direct step, 64 vs 20 (max_elements = 2^28)", "6 x 90 (64x64), 2 outer x 3"]
    for r in rows:
        assert r["status"] == "ok" and r["wganlab_s"] > 0, r
    for r in rows[:3]:
        assert_allclose(r["value_diff"], 0.0, atol=1e-5, err_msg=r["size"])
    assert "13-16 s here at n = 10,000" in rows[0]["note"] and "5.9 s here" in rows[2]["note"]
    ctx = bench.PairedTimer()
    x, y = ctx.images("test", 64, size=64), ctx.images("train", 20, size=64)
    want = float(patch_swd(x, y, 16, 1, projections=random_projections(256, 8, seed=0)))
    for r in rows[3:5]:
        assert r["baseline_s"] is None and r["value"] == pytest.approx(want, rel=1e-6)
    assert_allclose(rows[5]["value_diff"], 0.0, atol=1e-8)
    assert "per outer iteration (3 exact plans" in rows[5]["note"]


def test_plain_patch_swd_local_is_the_mean_over_locations_of_scipy():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 6, 6, generator=g), torch.rand(5, 1, 6, 6, generator=g)
    theta = random_projections(9, 4, seed=2)
    px, py = (F.unfold(z, 3, stride=2).double().numpy() for z in (x, y))  # (N, 9, L = 4)
    th = theta.double().numpy()
    want = np.mean([[scipy.stats.wasserstein_distance(px[:, :, l] @ t, py[:, :, l] @ t) for t in th]
                    for l in range(px.shape[-1])])
    assert_allclose(bench.plain_patch_swd_local(x, y, theta, 3, 2, chunk=3), want, rtol=1e-5)


def test_case_values_match_independent_computations(tiny_rows):
    ctx = bench.PairedTimer()
    x, y = ctx.images("test", 120), ctx.images("train", 120)
    C = scipy.spatial.distance.cdist(x.reshape(120, -1).double(), y.reshape(120, -1).double())
    r, c = scipy.optimize.linear_sum_assignment(C)  # equal uniform masses: an optimal assignment
    assert_allclose(tiny_rows[0]["value"], C[r, c].mean(), rtol=1e-12)


def test_pot_baseline_equals_the_assignment_oracle():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 5)) + 0.3
    C = scipy.spatial.distance.cdist(x, y)
    r, c = scipy.optimize.linear_sum_assignment(C)
    assert_allclose(bench.pot_w1(x, y), C[r, c].mean(), rtol=1e-12)


def test_plain_patch_swd_equals_scipy_on_the_projected_patches():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 6, 6, generator=g), torch.rand(5, 1, 7, 5, generator=g)
    theta = random_projections(9, 4, seed=2)
    px = F.unfold(x, 3).transpose(1, 2).reshape(-1, 9).double().numpy()
    py = F.unfold(y, 3).transpose(1, 2).reshape(-1, 9).double().numpy()
    th = theta.double().numpy()
    want = np.mean([scipy.stats.wasserstein_distance(px @ t, py @ t) for t in th])
    assert_allclose(bench.plain_patch_swd(x, y, theta, 3, chunk=3), want, rtol=1e-5)


def test_plain_ot_means_on_two_clusters():
    # two centroids, data {0, 2} and {10, 12}: a median of each pair is any point between them
    trace = bench.plain_ot_means(torch.tensor([[0.0], [2.0], [10.0], [12.0]]), [[1.0], [5.0]], 3)
    assert len(trace) == 4 and np.all(np.diff(trace) <= 1e-12)  # never increases (their Theorem 1)
    assert_allclose(trace[-1], 1.0, atol=1e-9)


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    """The default path: each case in a child process under a memory limit."""
    out = tmp_path / "b.json"
    args = ["bench", "w1-batch", "--out", str(out), "--repeat", "2", "--set", "w1-batch.m=8",
            "--set", "w1-batch.ns=50,60"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] >= 1 and report["settings"]["repeat"] == 2
    assert report["settings"]["isolate"] and report["settings"]["mem_limit_bytes"] > 0
    assert [r["case"] for r in report["rows"]] == ["w1-batch", "w1-batch"]
    assert [r["size"] for r in report["rows"]] == ["8 x 50", "8 x 60"]
    assert all(r["status"] == "ok" for r in report["rows"])
    assert_allclose([r["value_diff"] for r in report["rows"]], 0.0, atol=1e-10)
    md = out.with_suffix(".md").read_text()
    assert md.startswith("Machine: ") and md.count("| w1-batch |") == 2
    assert f"sliced sorts (plain / packed) {report['machine']['sliced_sort']};" in md.splitlines()[0]
    assert "ratio" in printed.splitlines()[0] and "wrote" in printed


def test_cli_in_process(tmp_path, capsys):
    out = tmp_path / "p.json"
    args = ["bench", "patch-swd", "--in-process", "--out", str(out)]
    args += [arg for k, v in TINY["patch-swd"].items() for arg in ("--set", f"patch-swd.{k}={v}")]
    assert main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["status"] == "ok" and row["size"] == "64 x 20 images, 8 proj."
    assert_allclose(row["value_diff"], 0.0, atol=1e-5)


def test_out_of_memory_becomes_a_row(monkeypatch):
    def huge(ctx, n):
        raise MemoryError("Unable to allocate 40 GiB")

    monkeypatch.setitem(bench.CASES, "oom", bench.Case("oom", "", "none", huge, {"n": 1}, {"n": 1}))
    (row,) = bench.run_case("oom", {"n": 1})
    assert row["status"] == "out of memory" and "40 GiB" in row["note"] and row["wganlab_s"] is None
    assert row["size"] == "n=1"


@pytest.mark.parametrize(("args", "msg"), [
    (["bench", "nope"], "unknown bench case 'nope'"),
    (["bench", "w1-square", "--set", "w1-square.k=3"], "has no size 'k'"),
    (["bench", "w1-square", "--set", "w1-square.n=-3"], "expected positive integer"),
    (["bench", "w1-square", "--set", "ot-means.n=30"], "not selected"),
    (["bench", "w1-square", "--set", "n=30"], "expected NAME.key=value"),
    (["bench", "w1-square", "--repeat", "0"], "repeat must be a positive integer"),
])
def test_bad_input_is_one_line_exit_2(args, msg, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_a_child_that_cannot_start_becomes_a_row():
    # 0.2 GiB of address space is too little to import torch: the child dies, the bench reports it
    (row,) = bench.run_bench(["w1-square"], overrides={"w1-square": {"n": "20"}}, mem_limit_gib=0.2)
    assert row["status"] in ("error", "out of memory") and "child process exit code" in row["note"]
    assert row["case"] == "w1-square" and row["size"] == "n=20 sides=28" and row["wganlab_s"] is None


def test_a_missing_dataset_stops_the_bench_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(timing, "DATASET", "no-such-dataset")
    assert main(["bench", "w1-square", "--in-process", "--set", "w1-square.n=10"]) == 2
    err = capsys.readouterr().err.splitlines()  # progress lines, then the error on one line
    assert err[-1].startswith("wganlab: error: unknown dataset 'no-such-dataset'")


def test_exact_cases_run_at_each_side_length():
    """sides: one row per image side length (64 is the authors' d = 4,096 in --full), each certified and equal
    to POT on the resized images."""
    rows = bench.run_bench(["w1-square"], overrides={"w1-square": {"n": "60", "sides": "28,32"}}, isolate=False)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert_allclose([r["value_diff"] for r in rows], 0.0, atol=1e-10)
    assert rows[0]["value"] != rows[1]["value"]
    assert bench.resolve_sizes(["w1-square", "w1-batch", "ot-means"], full=True)["ot-means"]["sides"] == (28, 64)


def test_large_tensors_go_on_huge_pages_where_the_kernel_offers_them():
    """:func:`tensors_on_huge_pages` before the first CPU tensor: a 64 MB tensor is backed by transparent huge
    pages; a value the user set is kept (``0``: none, where the kernel gives them only when asked). In child
    processes: torch reads the switch once."""
    code = (
        "import torch\n"
        "from wganlab.memory import tensors_on_huge_pages\n"
        "print(tensors_on_huge_pages())\n"
        "t = torch.ones(1 << 24)\n"
        "print([int(x.split()[1]) for x in open('/proc/self/smaps_rollup') if x.startswith('AnonHugePages')][0])\n")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text() or not Path("/proc/self/smaps_rollup").exists():
        pytest.skip("the kernel offers no transparent huge pages")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    applied, huge_kb = out.stdout.split()
    assert applied == "True" and int(huge_kb) >= 2048
    if "[always]" in mode.read_text():
        return  # every large mapping gets them: nothing for the switch to change
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "THP_MEM_ALLOC_ENABLE": "0"})
    applied, huge_kb = out.stdout.split()
    assert applied == "False" and int(huge_kb) < 2048


def test_freed_memory_is_kept_for_reuse_and_released_before_a_peak_measurement():
    """With :func:`keep_freed_memory` a freed 128 MB buffer stays in the heap (reused without fresh pages);
    :func:`release_freed_memory` (called before each timed side) hands it back, so peaks are not understated.
    In a child process: the setting is process-wide."""
    code = (
        "import numpy as np\n"
        "from wganlab.memory import keep_freed_memory, proc_kb, release_freed_memory\n"
        "rss = lambda: proc_kb('/proc/self/status', 'VmRSS')\n"
        "print(keep_freed_memory())\n"
        "a = np.ones(1 << 24); held = rss(); del a\n"
        "kept = rss(); release_freed_memory()\n"
        "print(held - kept, kept - rss())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "True":
        pytest.skip("not glibc: the allocator setting does not apply")
    dropped_on_free, dropped_on_release = int(out[1]), int(out[2])
    assert dropped_on_free < 16 * 1024 and dropped_on_release > 100 * 1024  # kB

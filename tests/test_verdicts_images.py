"""The verdicts of the image experiments (assignment, blur-vs-real, critic-architecture, multiscale-patch,
sinkhorn-generator) on synthetic measurements: for every claim, one set where it must hold, one where it
must not, and one with a measurement missing (not comparable). Also the assignment objective's pieces that
those experiments add: the unit-diameter cost scale and section 4's LogSumExp small-batch variant."""

import copy
import math

import pytest
import torch

from wganlab.experiments import EXPERIMENTS
from wganlab.objectives import build_objective
from wganlab.objectives.assignment import SmoothAssignment, unit_diameter_scale

HOLDS, FAILS, NA = "holds", "does not hold", "not comparable"


def verdicts(name: str, measurements: dict) -> dict[str, str]:
    """``{claim key: status}`` of experiment ``name`` on ``measurements``."""
    return {c["key"]: c["status"] for c in EXPERIMENTS[name].evaluate(copy.deepcopy(measurements))}


def without(measurements: dict, key: str) -> dict:
    return {k: v for k, v in measurements.items() if k != key}


# -- blur-vs-real -------------------------------------------------------------------------------------------


def blur_rows(w1: dict, swd: dict) -> list[dict]:
    """Rows for batch sizes 10 and 300; ``w1`` / ``swd``: ``(batch, kind) -> value``."""
    return [{"batch": b, "kind": k, "image_w1": w1[b, k], "patch_swd": swd[b, k]}
            for b in (10, 300) for k in ("real", "mean", "ot-means", "k-medians")]


PAPER_W1 = {(10, "real"): 10.0, (10, "mean"): 9.0, (10, "ot-means"): 8.0, (10, "k-medians"): 8.5,
            (300, "real"): 7.0, (300, "mean"): 9.0, (300, "ot-means"): 6.0, (300, "k-medians"): 6.5}
PAPER_SWD = {(b, k): {"real": 0.1, "mean": 0.5, "ot-means": 0.3, "k-medians": 0.3}[k]
             for b in (10, 300) for k in ("real", "mean", "ot-means", "k-medians")}
BLUR = {"rows": blur_rows(PAPER_W1, PAPER_SWD), "b0": 64,
        "batch_level": {"real": 50.7, "mean": 47.9, "k-medians": 39.4}, "n_train": 100}
BLUR_CLAIMS = ("image-w1-prefers-blur", "mean-only-small", "patch-prefers-real", "batch-w1-mean-below-real",
               "batch-w1-kmedians-below-mean")


def test_blur_vs_real_claims_hold_on_the_papers_pattern():
    assert verdicts("blur-vs-real", BLUR) == dict.fromkeys(BLUR_CLAIMS, HOLDS)


def test_blur_vs_real_claims_fail_on_the_opposite_pattern():
    w1 = dict(PAPER_W1)
    w1[300, "ot-means"] = 7.5  # OT-Means loses at B = 300
    w1[300, "mean"] = 6.0  # the mean wins at the largest B too
    swd = dict(PAPER_SWD)
    swd[10, "ot-means"] = 0.05  # a blurred batch beats real under patch SWD at B = 10
    m = {**BLUR, "rows": blur_rows(w1, swd), "batch_level": {"real": 40.0, "mean": 45.0, "k-medians": 50.0}}
    assert verdicts("blur-vs-real", m) == dict.fromkeys(BLUR_CLAIMS, FAILS)


def test_blur_vs_real_batch_level_halves_are_judged_each_on_its_own():
    m = {**BLUR, "batch_level": {"real": 50.0, "mean": 45.0, "k-medians": 46.0}}
    v = verdicts("blur-vs-real", m)
    assert v["batch-w1-mean-below-real"] == HOLDS and v["batch-w1-kmedians-below-mean"] == FAILS
    m = {**BLUR, "batch_level": {"real": 44.0, "mean": 45.0, "k-medians": 40.0}}
    v = verdicts("blur-vs-real", m)
    assert v["batch-w1-mean-below-real"] == FAILS and v["batch-w1-kmedians-below-mean"] == HOLDS


def test_blur_vs_real_missing_measurements_are_not_comparable():
    v = verdicts("blur-vs-real", without(BLUR, "batch_level"))
    assert v["batch-w1-mean-below-real"] == v["batch-w1-kmedians-below-mean"] == NA
    assert v["image-w1-prefers-blur"] == HOLDS
    v = verdicts("blur-vs-real", without(BLUR, "rows"))
    assert {v[k] for k in ("image-w1-prefers-blur", "mean-only-small", "patch-prefers-real")} == {NA}
    assert v["batch-w1-mean-below-real"] == HOLDS


# -- critic-architecture ------------------------------------------------------------------------------------


def arch(fc, gap, cnn_fc, direct=(1.0, 0.01, 0.01)) -> dict:
    """``final`` measurements from ``(w1, patch-swd, patch-swd-local)`` per method."""
    keys = ("w1", "patch-swd", "patch-swd-local")
    return {"final": {name: dict(zip(keys, v, strict=True)) for name, v in
                      (("fc", fc), ("cnn-gap", gap), ("cnn-fc", cnn_fc), ("direct", direct))}, "patch_size": 7}


ARCH_CLAIMS = ("cnn-lowers-patch-swd", "cnn-fc-location", "fc-image-w1")


def test_critic_architecture_claims_hold_on_the_papers_pattern():
    m = arch(fc=(5.0, 0.30, 0.40), gap=(7.0, 0.10, 0.35), cnn_fc=(6.0, 0.12, 0.20))
    assert verdicts("critic-architecture", m) == dict.fromkeys(ARCH_CLAIMS, HOLDS)


def test_critic_architecture_claims_fail_on_the_opposite_pattern():
    m = arch(fc=(8.0, 0.10, 0.20), gap=(5.0, 0.30, 0.15), cnn_fc=(6.0, 0.05, 0.30))  # CNN-GAP's patch SWD is higher
    assert verdicts("critic-architecture", m) == dict.fromkeys(ARCH_CLAIMS, FAILS)


def test_critic_architecture_missing_measurements_are_not_comparable():
    assert verdicts("critic-architecture", {"patch_size": 7}) == dict.fromkeys(ARCH_CLAIMS, NA)


# -- multiscale-patch ---------------------------------------------------------------------------------------


def ms(om_swd=0.4, ms_swd=0.1, ms_w1=10.0, ms_nn_min=3.0, real_w1=9.0, real_nn=6.0) -> dict:
    return {"rows": [
        {"batch": "OT-Means", "image_w1": 8.0, "patch_swd": om_swd, "nn_distance_median": 4.0, "nn_distance_min": 2.0},
        {"batch": "multi-scale patch SWD", "image_w1": ms_w1, "patch_swd": ms_swd, "nn_distance_median": 5.0,
         "nn_distance_min": ms_nn_min},
        {"batch": "real test batch", "image_w1": real_w1, "patch_swd": 0.05, "nn_distance_median": real_nn,
         "nn_distance_min": 3.0}]}


def test_multiscale_patch_claim_holds_when_sharper_novel_and_structured():
    assert verdicts("multiscale-patch", ms()) == {"sharp-novel-structured": HOLDS}


@pytest.mark.parametrize("bad", [{"ms_swd": 0.3}, {"ms_nn_min": 1.0}, {"ms_w1": 12.0}],
                         ids=["not-sharper", "a-copy", "structure-lost"])
def test_multiscale_patch_claim_fails_when_any_part_fails(bad):
    assert verdicts("multiscale-patch", ms(**bad)) == {"sharp-novel-structured": FAILS}


def test_multiscale_patch_missing_measurements_are_not_comparable():
    assert verdicts("multiscale-patch", {}) == {"sharp-novel-structured": NA}


# -- sinkhorn-generator -------------------------------------------------------------------------------------


def sink(runs: list[tuple[float, float]], control: tuple[float, float]) -> dict:
    """Runs and control as ``(sharpness_ratio, diversity_ratio)``."""
    row = lambda name, v: {"run": name, "sharpness_ratio": v[0], "diversity_ratio": v[1], "status": "done"}  # noqa: E731
    return {"rows": [row(f"sinkhorn eps={i}", v) for i, v in enumerate(runs)],
            "control": row("control: WGAN-GP", control)}


SINK_CLAIMS = ("blurry-non-diverse", "blurrier-than-control", "less-diverse-than-control")


def test_sinkhorn_generator_claims_hold_when_every_run_is_blurrier_and_less_diverse_than_the_control():
    m = sink([(0.5, 0.6), (0.7, 0.3)], control=(0.9, 0.9))
    assert verdicts("sinkhorn-generator", m) == dict.fromkeys(SINK_CLAIMS, HOLDS)


def test_sinkhorn_generator_claims_fail_when_one_run_matches_the_control_and_the_data():
    m = sink([(0.5, 0.6), (1.0, 0.95)], control=(0.9, 0.9))
    assert verdicts("sinkhorn-generator", m) == dict.fromkeys(SINK_CLAIMS, FAILS)


def test_sinkhorn_generator_control_claims_are_judged_against_the_control_not_the_data():
    m = sink([(0.5, 0.6), (0.7, 0.5)], control=(0.4, 0.9))  # blurry by the data, yet sharper than the control
    v = verdicts("sinkhorn-generator", m)
    assert v == {"blurry-non-diverse": HOLDS, "blurrier-than-control": FAILS, "less-diverse-than-control": HOLDS}


def test_sinkhorn_generator_missing_control_is_not_comparable():
    m = without(sink([(0.5, 0.6)], control=(0.9, 0.9)), "control")
    assert verdicts("sinkhorn-generator", m) == {"blurry-non-diverse": HOLDS, "blurrier-than-control": NA,
                                                 "less-diverse-than-control": NA}
    assert set(verdicts("sinkhorn-generator", {}).values()) == {NA}


# -- assignment ---------------------------------------------------------------------------------------------


def assignment(w1: dict, variance: dict) -> dict:
    rows = [{"model": k, "w1_10x": w1[k], "assignment_variance": variance.get(k, 0.0), "status": "done"} for k in w1]
    return {"rows": rows, "n_train": 500, "assign_points": 5000, "ring": {"w1_start": 1.0, "w1_end": 0.1}}


ASSIGN_CLAIMS = ("square-beats-gp", "ssim-beats-gp", "balanced", "small-batch-lse-fails")
TABLE2_W1 = {"GAN": 11.03, "WGAN": 11.19, "WGAN-GP": 9.15, "L2^2": 3.40, "SSIM": 7.17, "L2^2 LSE": 8.0}
TABLE2_VAR = {"WGAN": 1.99, "WGAN-GP": 0.82, "L2^2": 0.01, "SSIM": 0.05, "L2^2 LSE": 0.5}


def test_assignment_claims_hold_on_table_2():
    assert verdicts("assignment", assignment(TABLE2_W1, TABLE2_VAR)) == dict.fromkeys(ASSIGN_CLAIMS, HOLDS)


def test_assignment_claims_fail_when_wgan_gp_wins():
    w1 = {**TABLE2_W1, "WGAN-GP": 3.0, "L2^2 LSE": 3.2}
    var = {**TABLE2_VAR, "WGAN": 0.02, "WGAN-GP": 0.03}
    assert verdicts("assignment", assignment(w1, var)) == dict.fromkeys(ASSIGN_CLAIMS, FAILS)


def test_assignment_balance_needs_every_assignment_model_below_every_wgan():
    var = {**TABLE2_VAR, "SSIM": 0.9}  # SSIM spreads its points worse than WGAN-GP
    assert verdicts("assignment", assignment(TABLE2_W1, var))["balanced"] == FAILS


def test_assignment_models_not_trained_and_missing_measurements_are_not_comparable():
    w1 = {k: v for k, v in TABLE2_W1.items() if k not in ("SSIM", "L2^2 LSE")}
    v = verdicts("assignment", assignment(w1, TABLE2_VAR))
    assert v == {"square-beats-gp": HOLDS, "ssim-beats-gp": NA, "balanced": HOLDS, "small-batch-lse-fails": NA}
    assert verdicts("assignment", {"n_train": 500}) == dict.fromkeys(ASSIGN_CLAIMS, NA)


# -- the assignment objective's additions -------------------------------------------------------------------


@pytest.mark.parametrize(("cost", "diameter"), [("sqeuclidean", 4.0 * 48), ("euclidean", 2.0 * math.sqrt(48)),
                                                ("l1", 2.0 * 48), ("psnr", 100.0)])
def test_unit_diameter_scale_on_images_is_one_over_the_cost_between_opposite_corners(cost, diameter):
    x = torch.rand(5, 3, 4, 4) * 0.2  # the known range (-1, 1), not the data's, sets the box
    assert unit_diameter_scale(cost, x, (-1.0, 1.0)) == pytest.approx(1.0 / diameter, rel=1e-6)


def test_unit_diameter_scale_on_vectors_uses_the_datas_box_and_rejects_a_point():
    x = torch.tensor([[0.0, 1.0], [3.0, -3.0], [1.0, 0.0]])  # box [0, 3] x [-3, 1]: diameter 5
    assert unit_diameter_scale("euclidean", x) == pytest.approx(1 / 5)
    with pytest.raises(Exception, match="zero diameter"):
        unit_diameter_scale("euclidean", torch.ones(4, 2))


def test_lse_soft_min_lies_between_the_hard_min_and_eps_log_b_above_it():
    g = torch.Generator().manual_seed(0)
    real, fake, psi = torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(7, generator=g)
    hard = (torch.cdist(fake.double(), real.double()) ** 2 + psi.double()[None]).min(1).values
    for eps in (1e-3, 0.1, 1.0):
        soft = SmoothAssignment("sqeuclidean", eps=eps).soft_min(psi, real, fake).double()
        assert torch.all(soft >= hard - 1e-4) and torch.all(soft <= hard + eps * math.log(7) + 1e-4)
    assert torch.allclose(SmoothAssignment("sqeuclidean", eps=1e-4).soft_min(psi, real, fake).double(), hard,
                          atol=1e-3)


def test_lse_assigner_rises_at_over_assigned_real_points_and_the_generator_moves_to_its_soft_targets():
    real = torch.tensor([[0.0], [10.0]])
    fake = torch.tensor([[1.0], [2.0], [9.0]], requires_grad=True)  # two points near y_1, one near y_2
    psi = torch.zeros(2, requires_grad=True)
    obj = build_objective("assignment-lse", cost="sqeuclidean", eps=0.01)
    loss, stats = obj.critic_loss(lambda y: psi, real, fake.detach())
    loss.backward()
    # d(-F)/d psi_j = 1/B - count_j/n: negative (psi rises on descent) at the over-assigned y_1
    assert psi.grad[0] < 0 < psi.grad[1] and math.isfinite(stats["estimate"])
    loss, _ = obj.generator_loss(lambda y: torch.zeros(len(y)), real, fake)
    loss.backward()
    assert torch.allclose(fake.grad.flatten(), torch.tensor([2.0, 4.0, -2.0]) / 3, atol=1e-4)
    with pytest.raises(Exception, match="eps must be > 0"):
        build_objective("assignment-lse", eps=0.0)


def test_paired_ssim_cost_is_the_diagonal_of_the_ssim_cost_matrix_and_differentiable():
    from wganlab.ot.costs import cost_matrix, paired_cost

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(5, 1, 16, 16, generator=g) * 2 - 1).requires_grad_(True)
    y = torch.rand(5, 1, 16, 16, generator=g) * 2 - 1
    paired = paired_cost(x, y, "ssim")
    assert torch.allclose(paired, cost_matrix(x.detach(), y, "ssim", dtype=None).diagonal(), atol=1e-5)
    assert torch.allclose(paired_cost(y, y, "ssim"), torch.zeros(5), atol=1e-5)
    paired.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

"""Every claim of the experiments on the Stanczuk et al., Mallasto et al. and Elnekave & Weiss estimator,
tracking and sample-complexity figures, judged on synthetic measurements: one set where it must hold, sets
where it must not, and measurements with a key missing (not comparable). A verdict that always says
"holds" fails here; so does one that raises on a missing measurement. The helpers the verdicts rest on
(crossover, log-log fit, plateau) are checked against closed forms."""

import math

import numpy as np
import pytest

from wganlab.experiments import EXPERIMENTS
from wganlab.experiments.base import FAILS, HOLDS, NA
from wganlab.experiments.mean_vs_real import crossover
from wganlab.experiments.oracle_estimate import plateau_change
from wganlab.experiments.sample_complexity import extrapolate, loglog_fit


def judge(name: str, key: str, m: dict) -> dict:
    [v] = [c for c in EXPERIMENTS[name].evaluate(m) if c["key"] == key]
    return v


def gmm8(batch=7.0, fixed=7.0):
    return {"final_w1": 0.2, "final_normalised": 0.03, "ratio_end": batch, "ratio_second_half_median": batch,
            "fixed_w1": 0.2, "fixed_normalised": 0.2 / fixed, "ratio_fixed": fixed, "status": "done",
            "noise_floor": {"w1_two_true_samples": 0.05, "normalised_two_true_samples": 0.01}}


def oracle(ratio=8.0, plateau=0.02):
    return {"rows": [], "exact_w1": 8.0, "best_normalised": 8.0 / ratio, "ratio": ratio, "n_per_set": 1000,
            "max_plateau_change": plateau}


def lipschitz(gp=0.5, gs=0.2, ns=0.6, nsg=0.3):
    runs = {"wgan-gp / MLP": gp, "wgan / GroupSort": gs, "nsgan / MLP": ns, "nsgan / GroupSort": nsg}
    return {"rows": [{"run": k, "w1": v, "modes_covered": 8, "share_near_mode": 0.9} for k, v in runs.items()]}


def estimator(errors=None):
    errors = errors or {"2-D": (1.0, 1.2, 0.05), "images": (15.0, 14.9, 0.8)}
    return {"rows": [{"dataset": d, "method": m, "error_mean": e}
                     for d, es in errors.items() for m, e in zip(("wgan-wc", "wgan-gp", "ctransform"), es,
                                                                  strict=True)]}


def batch(ct_err=0.05, gp_err=0.5, ct_sharp=0.1, gp_sharp=0.3):
    return {"methods": {"ctransform": {"median_rel_error": ct_err, "sharpness": ct_sharp},
                        "wgan-gp": {"median_rel_error": gp_err, "sharpness": gp_sharp}}, "real_sharpness": 0.4}


def samples(lg01=25.0, lg001=45.0, s10=1.0, s500=0.05, w10=1.0, w500=0.8):
    rows = [{"distance": "w1", "n": 10, "mean": w10}, {"distance": "w1", "n": 500, "mean": w500},
            {"distance": "sinkhorn", "n": 10, "mean": s10}, {"distance": "sinkhorn", "n": 500, "mean": s500}]
    return {"rows": rows, "fit": {"a": 0.0, "b": -0.05}, "log10_n_for_0.1": lg01, "log10_n_for_0.01": lg001, "d": 20}


def otmeans(start=30.0, end=12.0, ot=10.0, real=15.0, copy_ot=0.0, nn=1.0, spacing=3.0):
    return {"real_batch_w1": real, "otmeans_w1": ot, "wgan_w1_start": start, "wgan_w1_end": end, "m": 64,
            "copy": {"n": 100, "otmeans_w1": copy_ot, "wgan_w1_start": 20.0, "wgan_w1_end": 5.0,
                     "nn_distance_median": nn, "data_spacing_median": spacing}}


CASES = {  # (experiment, claim) -> (measurements where it holds, [measurements where it does not])
    ("gmm8-tracking", "order-below"): (gmm8(), [gmm8(batch=2.0), gmm8(fixed=2.0), gmm8(batch=4.9, fixed=4.9)]),
    ("oracle-estimate", "far-below"): (oracle(), [oracle(ratio=3.0)]),
    ("lipschitz-critics", "lipschitz-helps"): (lipschitz(), [lipschitz(gs=0.6), lipschitz(nsg=0.7),
                                                            lipschitz(gs=0.6, nsg=0.7)]),
    ("estimator-error", "ctransform-order-of-magnitude"): (estimator(), [
        estimator({"2-D": (1.0, 1.2, 0.05), "images": (15.0, 14.9, 3.0)}),  # one data set only 5x
        estimator({"2-D": (1.0, 0.3, 0.05), "images": (15.0, 14.9, 0.8)})]),  # GP close to the c-transform
    ("batch-estimate", "ctransform-tracks"): (batch(), [batch(ct_err=0.2, gp_err=2.0), batch(gp_err=0.1)]),
    ("batch-estimate", "ctransform-blurry"): (batch(), [batch(ct_sharp=0.3, gp_sharp=0.1)]),
    ("sample-complexity", "n-for-0.1"): (samples(), [samples(lg01=10.0)]),
    ("sample-complexity", "n-for-0.01"): (samples(), [samples(lg001=30.0)]),
    ("sample-complexity", "sinkhorn-fast"): (samples(), [samples(s500=0.5), samples(w500=0.2)]),
    ("mean-vs-real-dimension", "crossover"): ({"crossover_d": 15.0, "batch": 64, "rows": []},
                                              [{"crossover_d": d, "batch": 64, "rows": []}
                                               for d in (5.0, 30.0, math.inf)]),
    ("otmeans-vs-fc-wgan", "wgan-approaches-otmeans"): (otmeans(), [otmeans(end=20.0), otmeans(end=12.0, real=11.0)]),
    ("otmeans-vs-fc-wgan", "m-equals-n-copies"): (otmeans(), [otmeans(copy_ot=0.5), otmeans(nn=4.0)]),
}
MINE = ("gmm8-tracking", "oracle-estimate", "lipschitz-critics", "estimator-error", "batch-estimate",
        "sample-complexity", "mean-vs-real-dimension", "otmeans-vs-fc-wgan")


def test_every_claim_of_the_eight_experiments_has_cases():
    assert {(n, c.key) for n in MINE for c in EXPERIMENTS[n].claims} == set(CASES)


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0]}:{c[1]}")
def test_verdict_holds_fails_and_is_not_comparable(case):
    name, key = case
    good, bads = CASES[case]
    v = judge(name, key, good)
    assert v["status"] == HOLDS and v["ours"], v
    for bad in bads:
        assert judge(name, key, bad)["status"] == FAILS, bad
    assert judge(name, key, {})["status"] == NA
    statuses = {k: judge(name, key, {kk: vv for kk, vv in good.items() if kk != k})["status"] for k in good}
    assert set(statuses.values()) <= {HOLDS, NA} and NA in statuses.values()  # a missing input: never a guess


def test_an_undertrained_oracle_critic_is_not_comparable():
    v = judge("oracle-estimate", "far-below", oracle(ratio=50.0, plateau=0.3))
    assert v["status"] == NA and "30%" in v["note"]


def test_the_gmm8_note_states_the_noise_floor():
    assert "W1 0.050" in judge("gmm8-tracking", "order-below", gmm8())["note"]


def test_crossover_interpolates_linearly():
    assert crossover([1, 10, 20], [1.0, 2.0, 5.0], [3.0, 3.0, 3.0]) == pytest.approx(10 + 10 / 3)
    assert crossover([1, 10], [1.0, 2.0], [3.0, 3.0]) == math.inf
    assert crossover([2, 10], [4.0, 5.0], [3.0, 3.0]) == 2.0


def test_loglog_fit_recovers_a_power_law_and_extrapolates_it():
    n = np.array([10.0, 100.0, 1000.0])
    fit = loglog_fit(n, 3.0 * n ** -0.25)
    assert fit["a"] == pytest.approx(math.log(3.0)) and fit["b"] == pytest.approx(-0.25)
    assert 10 ** extrapolate(fit, 0.3) == pytest.approx(1e4)  # 3 n^-1/4 = 0.3 at n = 10^4
    assert extrapolate(dict(fit, b=0.1), 0.3) == math.inf


def test_plateau_change_is_zero_on_a_flat_curve_and_large_on_a_rising_one():
    assert plateau_change([5.0] * 10) == 0.0
    assert plateau_change(list(range(1, 11))) == pytest.approx(abs(9.5 - 7.5) / 9.5)

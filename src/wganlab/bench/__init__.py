"""``wganlab bench``: each wganlab computation against a plain baseline, timed in the same process.

* :mod:`~wganlab.bench.timing` — paired best-of timing and peak memory (:class:`PairedTimer`);
* :mod:`~wganlab.bench.baselines` — the plain baselines (POT, numpy, torch), which the tests also check;
* :mod:`~wganlab.bench.cases` — the case registry and the exact-OT / patch-SWD / OT-Means cases;
* :mod:`~wganlab.bench.train_cases` — the ``train-*`` cases (one generator step with its critic steps);
* :mod:`~wganlab.bench.harness` — each case in a child process under a memory limit, the report written;
* :mod:`~wganlab.bench.render` — the text and markdown tables.
"""

from wganlab.bench.baselines import plain_ot_means, plain_patch_swd, plain_patch_swd_local, plain_train_steps, pot_w1
from wganlab.bench.cases import CASES, Case, describe_sizes, resolve_sizes
from wganlab.bench.harness import machine, run_bench, run_case
from wganlab.bench.render import COLUMNS, markdown, table
from wganlab.bench.timing import PairedTimer

__all__ = ["CASES", "COLUMNS", "Case", "PairedTimer", "describe_sizes", "machine", "markdown",
           "plain_ot_means", "plain_patch_swd", "plain_patch_swd_local", "plain_train_steps", "pot_w1",
           "resolve_sizes", "run_bench", "run_case", "table"]

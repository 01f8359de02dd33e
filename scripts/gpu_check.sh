#!/usr/bin/env bash
# The checks to run when a CUDA machine is at hand: the tests marked `gpu`, a profile of one CNN-critic training
# step (scripts/profile_step.py), then the first seconds of every training-bound paper preset on --device cuda,
# timed and extrapolated by scripts/time_presets.py.
#   bash scripts/gpu_check.sh OUT [SECONDS_PER_LOOP]
# Writes OUT/env.txt, OUT/gpu-tests.log, OUT/profile.txt, OUT/presets.jsonl, OUT/presets.log and OUT/summary.txt.
# PYTHON names the interpreter (default python3, with this checkout's src/ on PYTHONPATH); DEVICE=cpu tries the
# script where there is no GPU.
set -u
out=$1
per_loop=${2:-3}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ date -u; nproc --all; nvidia-smi -L
  $py -c "import torch, numpy, numba, ot; print('torch', torch.__version__, torch.cuda.get_device_name(),
'numpy', numpy.__version__, 'numba', numba.__version__, 'POT', ot.__version__)"; } > "$out/env.txt" 2>&1

timeout 60 $py -m pytest -q -m gpu -p no:cacheprovider -n 4 tests/test_gpu.py tests/test_medians.py \
  > "$out/gpu-tests.log" 2>&1
echo "exit status $?" >> "$out/gpu-tests.log"

# where a CNN critic's WGAN-GP step spends its time on the device (131 ms on an H200 at 959508c)
timeout 60 $py scripts/profile_step.py cnn-gap "${DEVICE:-cuda}" > "$out/profile.txt" 2>&1

# MNIST, CIFAR-10 and CelebA are not installable here: Fashion-MNIST (the same format and sizes) and the
# `noise` data set of the same shapes stand in (a step's time does not depend on what the pixels show)
mnist=fashion-mnist:train:n=10000:size=64
# name, seconds allowed for the cut run (data, the loops' first seconds, the work outside the loops), overrides;
# assignment: two of its seven models (whole-set assignment with the squared L2 and the SSIM cost), whose steps
# pass ten times the data through the generator: the critic models' steps are a small part of its time
while read -r name limit sets; do
  echo "== $name ($(date -u +%T))" >> "$out/presets.log"
  # shellcheck disable=SC2086
  timeout "$limit" $py scripts/time_presets.py "$out/presets.jsonl" "$name" --preset paper \
    --device "${DEVICE:-cuda}" --seconds "$per_loop" --out "/tmp/wganlab-runs/$name" $sets \
    >> "$out/presets.log" 2>&1 < /dev/null
  echo "exit status $?" >> "$out/presets.log"
done <<END
critic-architecture 55 --set critic-architecture.data=$mnist
otmeans-vs-fc-wgan 50 --set otmeans-vs-fc-wgan.data=$mnist --set otmeans-vs-fc-wgan.copy_data=${mnist/10000/1000}
batch-estimate 50 --set batch-estimate.data=noise:n=50000:size=64:channels=3
sinkhorn-generator 45 --set sinkhorn-generator.data=noise:n=50000:size=64:channels=3
oracle-estimate 40 --set oracle-estimate.data=noise:n=20000:size=32:channels=3
assignment 40 --set assignment.models=L2^2,SSIM
gmm8-tracking 20
lipschitz-critics 25
multiscale-patch 40 --set multiscale-patch.data=$mnist
END
$py scripts/time_presets.py --summary "$out/presets.jsonl" > "$out/summary.txt" 2>&1

#!/usr/bin/env bash
# The paper's Bayesian optimisation (ResNet50, 224 px, the seven design parameters) in one prepared
# command for a lent GPU machine (the `device` tool: 15 minutes of device time per session, at most
# 10 per command, files back at most 16 MiB each), so that a session with a GPU spends it training.
#
#   bash tools/device_bo.sh OUT_DIR
#
# Steps, each timed in OUT_DIR/device_bo.log:
#   1. wheels carried in .whl/ (pure-Python packages the GPU image lacks: nibabel, pydicom, pynrrd,
#      scikit-optimize, pyaml) are installed to /tmp/site; the core runs from L3Locator/ (no install);
#   2. training phantoms as in the model card (seeds 300-499 painted from the VerSe mask, seeds 0-79
#      analytic), JOBS generators in parallel, to /tmp;
#   3. the preprocessed-slice cache filled by JOBS processes in parallel (training reuses it);
#   4. `l3locator train` with --trials TRIALS, stopped after TRAIN_SECONDS (the best trial's model is
#      kept after every trial); its log, trial table and one model (final_model.pt with its card,
#      else best_model.pt) come back in OUT_DIR, the model in float16 split into 15 MB parts
#      (`cat NAME.pt.part-* > NAME.pt` joins them); 8 files at most.
#
# Before the call, on the developer's machine (both paths are git-ignored; name them in `carry`):
#   mkdir -p .device && cp ../shared/data/real/verse004_vertebrae_T9-L5.nii.gz .device/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl nibabel pydicom pynrrd scikit-optimize pyaml
# Settings (environment): TRIALS (12), EPOCHS (4), TRAIN_SECONDS (300), JOBS (14), DEVICE (cuda),
# ARCH (resnet50), SIZE (224), TEMPLATED (200), ANALYTIC (80), PHANTOM_SIZE (256).
# A dry run on a CPU: DEVICE=cpu ARCH=resnet18 SIZE=32 TEMPLATED=2 ANALYTIC=2 PHANTOM_SIZE=64 TRIALS=2 EPOCHS=1 JOBS=2 (35 s)
set -euo pipefail

OUT_DIR=${1:?usage: bash tools/device_bo.sh OUT_DIR}
TRIALS=${TRIALS:-12}
EPOCHS=${EPOCHS:-4}
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
JOBS=${JOBS:-14}
DEVICE=${DEVICE:-cuda}
ARCH=${ARCH:-resnet50}
SIZE=${SIZE:-224}
TEMPLATED=${TEMPLATED:-200}
ANALYTIC=${ANALYTIC:-80}
PHANTOM_SIZE=${PHANTOM_SIZE:-256}
TEMPLATE=.device/verse004_vertebrae_T9-L5.nii.gz
WORK=$(mktemp -d /tmp/l3bo.XXXX)
DATA=$WORK/data
CACHE=$WORK/cache
mkdir -p "$OUT_DIR" "$DATA"
LOG=$OUT_DIR/device_bo.log
START=$SECONDS
step() { echo "[$((SECONDS - START)) s] $*" | tee -a "$LOG"; }

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/L3Locator:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$LOG"
step "environment ready"

# Seeds FIRST..FIRST+COUNT-1 in JOBS nearly equal parts, one generator each (extra options after COUNT).
generate() {
  local first=$1 count=$2; shift 2
  local part=$(( (count + JOBS - 1) / JOBS )) seed
  for (( seed = first; seed < first + count; seed += part )); do
    python3 -m l3locator phantoms "$DATA" --count $(( seed + part > first + count ? first + count - seed : part )) \
      --first-seed "$seed" --size "$PHANTOM_SIZE" "$@" >> "$WORK/phantoms.log" 2>&1 &
  done
  wait
}
if [ "$TEMPLATED" -gt 0 ]; then
  [ -f "$TEMPLATE" ] || { echo "missing $TEMPLATE (see the header)" | tee -a "$LOG"; exit 2; }
  generate 300 "$TEMPLATED" --vertebra-template "$TEMPLATE"
fi
[ "$ANALYTIC" -gt 0 ] && generate 0 "$ANALYTIC"
step "phantoms: $(ls "$DATA" | grep -c '_vertebrae') cases"

for (( job = 0; job < JOBS; job++ )); do
  python3 - "$DATA" "$CACHE" "$SIZE" "$job" "$JOBS" <<'EOF' &
import sys
from l3locator.preprocessing import PreprocessingConfig
from l3locator.training.cache import prepare_cases
from l3locator.training.dataset import discover_cases

data, cache, size, job, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
prepare_cases(discover_cases(data).cases[job::jobs], PreprocessingConfig(input_size=size), cache)
EOF
done
wait
step "cache filled"

set +e
timeout "$TRAIN_SECONDS" python3 -m l3locator train "$DATA" --output-dir "$WORK/run" --cache-dir "$CACHE" --trials "$TRIALS" \
  --epochs "$EPOCHS" --folds 0 --device "$DEVICE" --arch "$ARCH" --input-size "$SIZE" --progress text > "$OUT_DIR/train.log" 2>&1
status=$?
set -e
step "train exited with $status (124: stopped after $TRAIN_SECONDS s)"

[ -f "$WORK/run/trials.jsonl" ] && cp "$WORK/run/trials.jsonl" "$OUT_DIR/"
# at most 8 files come back: the logs, the trial table, and one model (the final one, else the best trial's)
model=$WORK/run/final_model.pt
[ -f "$model" ] || model=$WORK/run/best_model.pt
if [ -f "$model" ]; then
  # float16 (as the shipped model is stored): a ResNet50 in 4 parts instead of 7
  python3 -c "import sys; from l3locator.modelfile import load_model; load_model(sys.argv[1]).save(sys.argv[2], half=True)" \
    "$model" "$WORK/half.pt"
  split -b 15m -d "$WORK/half.pt" "$OUT_DIR/$(basename "$model").part-"
  [ -f "${model%.pt}.md" ] && cp "${model%.pt}.md" "$OUT_DIR/"
fi
step "outputs: $(ls "$OUT_DIR" | tr '\n' ' ')"

#!/usr/bin/env bash
# Unpack at disk speed (issue 14, point 6): `ukpm unpack` of a package with a big initrd against
# its floor, GNU `tar -xf` of every layer plus a `sha256sum` of every blob (what unpacking with
# verification costs with the standard tools, one after the other), on the same files, with the
# blobs in the page cache for both. Target: ukpm at most 1.2 x the floor.
#
# Knobs: UKPM (the binary; default: built here in release mode), INITRD_MB [512], RUNS [5],
# WORK (where the temp folder goes; default $TMPDIR). Prints every run, the medians, the ratio
# and ukpm's peak RSS; removes everything it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
for program in tar sha256sum /usr/bin/time python3; do
  command -v "$program" >/dev/null || { echo "$program is missing (apt-get install tar coreutils time python3)"; exit 1; }
done
if [ -z "${UKPM:-}" ]; then
  cargo build --release --locked -q -p ukpm-cli
  UKPM="$PWD/target/release/ukpm"
fi
INITRD_MB="${INITRD_MB:-512}"
RUNS="${RUNS:-5}"
work="$(mktemp -d "${WORK:-${TMPDIR:-/tmp}}/ukpm-bench-unpack-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
export UKPM_STORE="$work/store"

# Incompressible data (a fixed seed, so runs compare), written once.
python3 - "$INITRD_MB" <<'EOF'
import random, sys
rng = random.Random(14)
with open("initrd.img", "wb") as f:
    for _ in range(int(sys.argv[1])):
        f.write(rng.randbytes(1 << 20))
with open("kernel", "wb") as f:
    f.write(rng.randbytes(8 << 20))
EOF
"$UKPM" pack big:1 --kernel kernel --initrd initrd.img --arch x86_64 --plat qemu >/dev/null 2>&1
blobs=$("$UKPM" --json inspect big:1 | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for layer in doc["manifests"][0]["manifest"]["layers"]:
    print("store/blobs/sha256/" + layer["digest"].split(":")[1])
')
# Warm the page cache for both sides.
cat $blobs >/dev/null

now() { date +%s.%N; }
floor_runs=() ukpm_runs=() tar_runs=() rss=0
for run in $(seq "$RUNS"); do
  rm -rf out-tar out-ukpm && mkdir out-tar && sync
  start=$(now)
  for blob in $blobs; do tar -xf "$blob" -C out-tar; done
  middle=$(now)
  sha256sum $blobs >/dev/null
  end=$(now)
  floor=$(awk "BEGIN {print $end - $start}") tar_only=$(awk "BEGIN {print $middle - $start}")
  sync
  start=$(now)
  /usr/bin/time -f %M -o rss.txt "$UKPM" unpack big:1 out-ukpm >/dev/null 2>&1
  ours=$(awk "BEGIN {print $(now) - $start}")
  rss=$(cat rss.txt)
  cmp -s out-tar/unikraft/bin/initrd out-ukpm/unikraft/bin/initrd || { echo "the two unpacks differ"; exit 1; }
  printf 'run %d: tar -xf %.3f s + sha256sum %.3f s = %.3f s; ukpm unpack %.3f s\n' \
    "$run" "$tar_only" "$(awk "BEGIN {print $floor - $tar_only}")" "$floor" "$ours"
  floor_runs+=("$floor") ukpm_runs+=("$ours") tar_runs+=("$tar_only")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
f=$(median "${floor_runs[@]}") u=$(median "${ukpm_runs[@]}") t=$(median "${tar_runs[@]}")
printf '\nunpack of %d MiB + 8 MiB kernel, median of %d: floor %.3f s (tar -xf alone %.3f s), ukpm %.3f s\n' \
  "$INITRD_MB" "$RUNS" "$f" "$t" "$u"
printf 'ukpm / floor %.2f (target <= 1.2), ukpm / tar -xf alone %.2f, peak RSS %.1f MiB\n' \
  "$(awk "BEGIN {print $u / $f}")" "$(awk "BEGIN {print $u / $t}")" "$(awk "BEGIN {print $rss / 1024}")"

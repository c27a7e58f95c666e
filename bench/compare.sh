#!/usr/bin/env bash
# Builds ukpm in release mode and times it against skopeo, crane (when on PATH) and curl on a
# loopback docker-registry and through a WAN-emulating proxy. See bench/compare.py for knobs,
# e.g. `INITRD_MB=64 RUNS=1 bash bench/compare.sh` for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
for program in docker-registry skopeo curl python3 /usr/bin/time; do
  command -v "$program" >/dev/null || { echo "$program is missing (apt-get install docker-registry skopeo curl python3 time)"; exit 1; }
done
cargo build --release --locked -q -p ukpm-cli
exec python3 bench/compare.py

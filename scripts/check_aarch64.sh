#!/usr/bin/env bash
# Check that pytest-edgeperf installs and runs on aarch64 (Raspberry Pi 4/5) from an x86_64 Debian host.
#
# Why: we have no Pi in CI; an arm64 Debian bookworm root filesystem (the base of Raspberry Pi OS bookworm)
# under qemu user-mode emulation proves the aarch64 wheels resolve (numpy, onnxruntime, ai-edge-litert,
# opencv-python-headless for cp311) and that the plugin measures with every runtime there.
# Timings under qemu are meaningless (emulated, ~10-50x slower): this checks install + function only.
#
# Usage (as root, on Debian/Ubuntu x86_64):  scripts/check_aarch64.sh [ROOTFS_DIR]
#   ROOTFS_DIR defaults to /work/arm64root; it must NOT be inside the repository.
# Idempotent: each step is skipped when its result is already there; re-running re-copies the repo and re-runs
# the checks. Needs network to deb.debian.org and PyPI only. Takes ~25-40 minutes the first time.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOTFS="${1:-/work/arm64root}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
EXTRAS="${EXTRAS:-onnx,litert,opencv}"
OUT="${OUT:-$ROOTFS/root/aarch64-check}"   # logs + results.json end up here (inside the chroot's /root)

case "$ROOTFS/" in "$REPO"/*) echo "error: ROOTFS_DIR $ROOTFS is inside the repo $REPO" >&2; exit 2;; esac
[ "$(id -u)" = 0 ] || { echo "error: run as root (debootstrap + chroot)" >&2; exit 2; }

# --- 1. qemu user-mode emulation + binfmt_misc --------------------------------------------------------------
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null \
        || ! command -v update-binfmts >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-user-static debootstrap binfmt-support rsync
fi
command -v rsync >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y rsync
# In containers binfmt_misc is often not mounted (systemd would do it on a normal host).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    echo "binfmt: qemu-aarch64 registered ($(grep flags /proc/sys/fs/binfmt_misc/qemu-aarch64))"
else
    # Fallback: without binfmt_misc the chroot cannot exec arm64 binaries; only
    # `qemu-aarch64-static -L $ROOTFS $ROOTFS/usr/bin/python3 ...` would work, and debootstrap's second stage
    # (which runs dpkg inside the chroot) cannot. Stop here with a clear message.
    echo "error: binfmt_misc registration for qemu-aarch64 failed; cannot run an arm64 chroot here" >&2
    exit 1
fi
# Copying the static qemu into the chroot is only needed when binfmt lacks the F (fix-binary) flag.
if ! grep -q 'flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    mkdir -p "$ROOTFS/usr/bin" && cp -f "$(command -v qemu-aarch64-static)" "$ROOTFS/usr/bin/"
fi

# --- 2. arm64 Debian bookworm root filesystem with Python 3.11 ------------------------------------------------
if [ ! -x "$ROOTFS/usr/bin/python3" ] || [ -d "$ROOTFS/debootstrap" ]; then
    if [ ! -d "$ROOTFS/debootstrap" ]; then
        debootstrap --arch=arm64 --foreign --include=python3,python3-venv,python3-pip \
            bookworm "$ROOTFS" "$MIRROR"
    fi
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage   # runs arm64 dpkg under qemu: slow
fi
# /proc is needed by psutil and by multiprocessing (the measurement worker); unmounted on exit.
# Do NOT bind /sys: under qemu, onnxruntime's cpuinfo parses the x86 host's /sys/devices/system/cpu as arm64 and
# `import onnxruntime` dies with SIGSEGV. Without /sys it only warns ("Error in cpuinfo: ...") and runs.
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
trap 'umount "$ROOTFS/dev" 2>/dev/null || true; umount "$ROOTFS/proc" 2>/dev/null || true' EXIT
cp -f /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# Behind a TLS-intercepting proxy the host trusts extra CAs; give the chroot the same ones so pip can reach PyPI.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null && [ -d "$ROOTFS/usr/local/share/ca-certificates" ]; then
    cp -f /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 || true
fi
chroot "$ROOTFS" /usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1 || {
    chroot "$ROOTFS" apt-get update
    chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip
}

# --- 3. copy the work tree (incl. uncommitted files, no .git/.venv) and pip install with extras -------------
mkdir -p "$ROOTFS/root/edgeperf" "$OUT"
rsync -a --delete --exclude .git --exclude .venv --exclude '*.egg-info' --exclude __pycache__ \
    --exclude .pytest_cache --exclude .ruff_cache --exclude .hypothesis "$REPO/" "$ROOTFS/root/edgeperf/"
# env -i: the host's PIP_* / SSL_* variables (find-links, cert paths) must not leak into the chroot.
IN_CHROOT=(chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/root/venv/bin:/usr/bin:/bin LANG=C.UTF-8
           PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
[ -x "$ROOTFS/root/venv/bin/python" ] || "${IN_CHROOT[@]}" python3 -m venv /root/venv
# --only-binary for the heavy runtimes: if an aarch64/cp311 wheel is missing, fail loudly rather than compile.
"${IN_CHROOT[@]}" /bin/sh -c "cd /root/edgeperf && pip install \
    --only-binary numpy,scipy,onnx,onnxruntime,ai-edge-litert,opencv-python-headless,psutil \
    -e '.[$EXTRAS]' pytest" 2>&1 | tee "$OUT/pip-install.log"
"${IN_CHROOT[@]}" pip list --format=freeze | tee "$OUT/pip-freeze.txt"
# Only the editable pytest-edgeperf itself should be built; any other "Created wheel" means a source build.
if grep "Created wheel for" "$OUT/pip-install.log" | grep -v "pytest-edgeperf"; then
    echo "NOTE: the packages above were compiled from source (no aarch64 wheel)"
else
    echo "all dependencies installed from aarch64 wheels:"; grep -o "Downloading [^ ]*aarch64[^ ]*" "$OUT/pip-install.log" || true
fi

# --- 4. run: machine, model CLI, a zoo-model measurement with every runtime, then the plugin core tests -------
"${IN_CHROOT[@]}" python -c 'import platform; print("platform.machine() =", platform.machine())'
"${IN_CHROOT[@]}" /bin/sh -c 'cd /root && python -m pytest_edgeperf.models build tiny_cnn && python -m pytest_edgeperf.models list'
cat > "$OUT/test_aarch64_smoke.py" <<'EOF'
"""aarch64 smoke test: the zoo's tiny_cnn through every runtime the plugin knows."""
import pytest


@pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime", "litert", "opencv"])
def test_tiny_cnn(edgeperf, framework):
    result = edgeperf.measure()
    assert result.framework == framework
EOF
rm -f "$OUT/out.json"   # never judge a stale results file
set +e
"${IN_CHROOT[@]}" /bin/sh -c "cd /root/aarch64-check && python -m pytest -p no:cacheprovider -v \
    test_aarch64_smoke.py --edgeperf-quick --edgeperf-json=/root/aarch64-check/out.json" 2>&1 | tee "$OUT/smoke.log"
smoke_rc=${PIPESTATUS[0]}
"${IN_CHROOT[@]}" python - <<'EOF'
import json
d = json.load(open("/root/aarch64-check/out.json"))
print("device profile:", d["device"].get("profile"))
for r in d["results"]:
    print(r["framework"], "machine =", r["environment"]["machine"], "runtime", r["environment"]["runtime_version"],
          "fps(meaningless under qemu) = %.1f" % r["summary"]["fps"])
print("environment.machine =", d["environment"]["machine"])
assert d["environment"]["machine"] == "aarch64", "session environment.machine is not aarch64"
assert all(r["environment"]["machine"] == "aarch64" for r in d["results"]), "a result's machine is not aarch64"
assert {r["framework"] for r in d["results"]} == {"onnxruntime", "litert", "opencv"}, "a runtime did not run"
EOF
json_rc=$?
"${IN_CHROOT[@]}" /bin/sh -c 'cd /root/edgeperf && python -m pytest tests/test_plugin_core.py -q -x -p no:cacheprovider \
    -k "real_measurement or crashing or ids"' 2>&1 | tee "$OUT/plugin-core.log"
core_rc=${PIPESTATUS[0]}
set -e
echo "aarch64 check: smoke rc=$smoke_rc json rc=$json_rc plugin-core rc=$core_rc (logs in $OUT)"
[ "$smoke_rc" = 0 ] && [ "$json_rc" = 0 ] && [ "$core_rc" = 0 ]

#!/usr/bin/env bash
# `gpunet provider gpus` with the fake NVML: inventory, health and the idle check in
# text and JSON, a GPU that fails (ECC, Xid seen at open is not replayed, lost), an
# old driver's absent fields, and the refusals (no library, a driver that does not
# answer).
set -u
GPUNET="$1" FAKE="$2" FAKE_OLD="$3"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-gpus-test
export GPUNET_FAKE_NVML_STATE="$WORK/nvml.json"

state() { # $1: the first GPU's extra fields, as JSON members
  cat >"$GPUNET_FAKE_NVML_STATE" <<JSON
{"driver_version": "580.159.04", "cuda_driver_version": 12080,
 "gpus": [{"uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 85520809984,
           "memory_used_bytes": 587202560, "memory_reserved_bytes": 586153984, "minor": 2,
           "compute_capability": [9, 0], "pci_bus_id": "00000000:3B:00.0",
           "nvlink": [1, 1, 1, 0] ${1:+, $1}},
          {"uuid": "GPU-bbbb", "name": "NVIDIA L4", "memory_total_bytes": 24152899584,
           "compute_capability": [8, 9], "pci_bus_id": "00000000:5E:00.0"}]}
JSON
}
gpus() { "$GPUNET" provider gpus --nvml-library "$FAKE" "$@"; }

# --- a healthy host, text ---
state ""
out="$(gpus)" || fail "provider gpus: exit $?"
echo "$out" | grep -q 'NVML: driver 580.159.04, CUDA 12.8, 2 GPU(s)' || fail "text: no driver line: $out"
echo "$out" | grep -q 'GPU 0  GPU-aaaa  NVIDIA H100 80GB HBM3, 81559 MiB, compute 9.0, PCI 00000000:3B:00.0, /dev/nvidia2, nvlink (3 active NVLink links)' ||
  fail "text: GPU 0 line: $out"
echo "$out" | grep -q 'pcie (0 active NVLink links)' || fail "text: the L4 is not pcie: $out"
[ "$(echo "$out" | grep -c 'health: healthy')" = 2 ] || fail "text: not two healthy GPUs: $out"
[ "$(echo "$out" | grep -c 'idle check: idle')" = 2 ] || fail "text: not two idle GPUs: $out"

# --- JSON ---
json="$(gpus -o json)" || fail "provider gpus -o json: exit $?"
[ "$(echo "$json" | json_field '["cuda_driver_version"]')" = 12.8 ] || fail "json: cuda version"
[ "$(echo "$json" | json_field '["gpus"][0]["compute_capability"]')" = 9.0 ] || fail "json: cc"
[ "$(echo "$json" | json_field '["gpus"][0]["interconnect"]')" = nvlink ] || fail "json: nvlink"
[ "$(echo "$json" | json_field '["gpus"][1]["interconnect"]')" = pcie ] || fail "json: pcie"
[ "$(echo "$json" | json_field '["gpus"][0]["health"]["healthy"]')" = True ] || fail "json: healthy"
[ "$(echo "$json" | json_field '["gpus"][0]["idle"]["baseline_used_bytes"]')" = 1048576 ] ||
  fail "json: idle baseline: $(echo "$json" | json_field '["gpus"][0]["idle"]')"
[ "$(echo "$json" | json_field '["gpus"][0]["health"]["raw"]["temperature_c"]["value"]')" = 40 ] ||
  fail "json: raw temperature"

# --- a failing GPU: uncorrected ECC, a pending row remap, a leftover process ---
state '"ecc_volatile_uncorrected": 2, "remapped_rows": {"pending": true}, "compute_processes": [{"pid": 4242}]'
out="$(gpus)" || fail "provider gpus (failing GPU): exit $?"
echo "$out" | grep -q 'health: FAILED' || fail "ECC: not FAILED: $out"
echo "$out" | grep -q '2 uncorrected ECC error(s) since the driver loaded' || fail "ECC reason: $out"
echo "$out" | grep -q 'a row remapping is pending' || fail "remap reason: $out"
echo "$out" | grep -q 'idle check: NOT idle' || fail "leftover process: idle: $out"
[ "$(echo "$out" | grep -c 'health: healthy')" = 1 ] || fail "the other GPU is not healthy: $out"
json="$(gpus -o json)"
[ "$(echo "$json" | json_field '["gpus"][0]["idle"]["pids"]')" = '[4242]' ] || fail "json: pids"

# --- a lost GPU ---
state '"lost": true'
out="$(gpus)" || fail "provider gpus (lost GPU): exit $?"
echo "$out" | grep -q 'GPU is lost' || fail "lost: $out"

# --- an old driver: fields absent, the reason listed, not a failure ---
state ""
out="$("$GPUNET" provider gpus --nvml-library "$FAKE_OLD")" || fail "old driver: exit $?"
echo "$out" | grep -q 'CUDA ?' || fail "old driver: CUDA version: $out"
echo "$out" | grep -q 'compute ?, PCI ?' || fail "old driver: fields: $out"
echo "$out" | grep -q 'Not in this driver.*nvmlDeviceGetPciInfo_v3' || fail "old driver: absent list: $out"
echo "$out" | grep -q 'Xid events: Xid events not monitored' || fail "old driver: Xid line: $out"
echo "$out" | grep -q 'not monitored: uncorrected ECC errors: this driver has no' || fail "old driver: ecc: $out"

# --- refusals ---
expect_error "no NVML" "NVML not found: no NVIDIA driver on this host" \
  "$GPUNET" provider gpus --nvml-library "$WORK/libnvidia-ml-absent.so.1"
echo '{"init": 9, "gpus": []}' >"$GPUNET_FAKE_NVML_STATE"
expect_error "driver not answering" "nvmlInit failed: Driver Not Loaded" gpus
"$GPUNET" provider gpus --help | grep -q 'not monitored' || fail "--help does not explain 'not monitored'"

checks_report "provider gpus: all checks passed"

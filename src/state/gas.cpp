#include "state/gas.h"

#include "base/check.h"
#include "base/checked_math.h"

namespace gpunet::state {

namespace {

uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  auto p = base::CheckedMul(a, b);
  return p ? *p : GasMeter::kUnlimited;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  auto s = base::CheckedAdd(a, b);
  return s ? *s : GasMeter::kUnlimited;
}

uint64_t Priced(uint64_t base, uint64_t per_byte, size_t bytes) {
  return SaturatingAdd(base, SaturatingMul(per_byte, bytes));
}

}  // namespace

bool GasMeter::Charge(uint64_t gas) {
  if (m_exhausted) return false;
  if (m_prepaid) return true;
  const uint64_t total = SaturatingAdd(m_used, gas);
  if (total > m_limit) {
    m_used = m_limit;
    m_exhausted = true;
    return false;
  }
  m_used = total;
  GPUNET_CHECK(m_used <= m_limit);
  return true;
}

bool GasMeter::ChargeGet(size_t key_bytes, size_t value_bytes, Source source) {
  ++m_counts.gets;
  if (source == Source::kStore) ++m_counts.store_gets;
  return Charge(Priced(m_params.read_base, m_params.read_per_byte, key_bytes + value_bytes));
}

bool GasMeter::ChargeScan() {
  ++m_counts.scans;
  return Charge(m_params.read_base);
}

bool GasMeter::ChargeScanStep(size_t key_bytes, size_t value_bytes, Source source) {
  ++m_counts.scan_steps;
  if (source == Source::kStore) ++m_counts.store_scan_entries;
  return Charge(Priced(m_params.scan_step, m_params.read_per_byte, key_bytes + value_bytes));
}

bool GasMeter::ChargePut(size_t key_bytes, size_t value_bytes) {
  ++m_counts.puts;
  return Charge(Priced(m_params.write_base, m_params.write_per_byte, key_bytes + value_bytes));
}

bool GasMeter::ChargeDelete(size_t key_bytes) {
  ++m_counts.deletes;
  return Charge(Priced(m_params.write_base, m_params.write_per_byte, key_bytes));
}

uint64_t GasLimitOf(uint64_t fee_ugpn, uint64_t byte_and_msg_price_ugpn, uint64_t price_ugpn) {
  GPUNET_CHECK(price_ugpn > 0);
  if (fee_ugpn <= byte_and_msg_price_ugpn) return 0;
  return (fee_ugpn - byte_and_msg_price_ugpn) / price_ugpn;
}

uint64_t FeeForGas(uint64_t byte_and_msg_price_ugpn, uint64_t gas, uint64_t price_ugpn) {
  return SaturatingAdd(byte_and_msg_price_ugpn, SaturatingMul(gas, price_ugpn));
}

}  // namespace gpunet::state

// Fakes of the lease engine's ports (provider/engine.h) for its tests: a ledger the
// test moves by hand, and a runtime that is a map.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "codec/tx_result.h"
#include "provider/engine.h"

namespace gpunet::testing {

using provider::ChainPort;
using provider::ChainView;
using provider::TxOutcome;

/// A ledger the test moves by hand; Send applies what the real one would.
class FakeChain final : public ChainPort {
 public:
  ChainView view;
  bool reachable = true;
  std::vector<codec::Msg> sent;
  std::vector<size_t> tx_sizes;                    // messages per tx, in order
  std::function<void(const codec::Msg&)> on_send;  // sees each message before it applies

  base::Result<ChainView> Fetch(const std::vector<uint64_t>&) override {
    if (!reachable) return base::Fail(base::ErrorCode::kUnavailable, "cannot reach the node");
    return view;
  }
  base::Result<TxOutcome> Send(const std::vector<codec::Msg>& msgs) override {
    if (!reachable) return base::Fail(base::ErrorCode::kUnavailable, "cannot reach the node");
    tx_sizes.push_back(msgs.size());
    for (const auto& m : msgs) {
      if (on_send) on_send(m);
      sent.push_back(m);
      if (auto* s = std::get_if<codec::MsgLeaseStarted>(&m)) {
        auto& l = view.leases.at(s->lease_id);
        if (l.state != "reserved") return Code(codec::TxCode::kMarketLeaseState);
        l.state = "started";
        l.started_ms = view.time_ms;
      } else if (auto* c = std::get_if<codec::MsgLeaseClose>(&m)) {
        auto& l = view.leases.at(c->lease_id);
        if (l.state == "closed") return Code(codec::TxCode::kMarketLeaseState);
        l.state = "closed";
        l.end = c->reason == codec::CloseReason::kNoManifest ? "no_manifest" : "provider_closed";
        l.closed_ms = view.time_ms;
      }
    }
    return TxOutcome{0, "ok", "", view.height};
  }
  TxOutcome Code(codec::TxCode code) {
    return {static_cast<uint16_t>(code), "lease_state", "wrong state", view.height};
  }
  template <class M>
  size_t Count() const {
    return static_cast<size_t>(std::ranges::count_if(
        sent, [](const codec::Msg& m) { return std::holds_alternative<M>(m); }));
  }
};

class FakeWorkloads final : public provider::WorkloadPort {
 public:
  std::map<std::string, bool> running;  // id -> running
  std::vector<runtime::WorkloadSpec> started;
  std::set<std::string> lost;        // ended with their supervisor lost
  std::set<std::string> unreadable;  // Running() fails (a state file the runtime cannot read)
  std::vector<std::string> List() override {
    std::vector<std::string> out;
    for (const auto& [id, r] : running) out.push_back(id);
    return out;
  }
  base::Result<bool> Running(const std::string& id) override {
    auto it = running.find(id);
    if (it == running.end()) return base::Fail(base::ErrorCode::kNotFound, id);
    if (unreadable.contains(id)) return base::Fail(base::ErrorCode::kIo, id + ": unreadable");
    return it->second;
  }
  base::Status Start(const runtime::WorkloadSpec& spec) override {
    started.push_back(spec);
    running[spec.id] = true;
    return {};
  }
  base::Status Stop(const std::string& id) override {
    running.at(id) = false;
    return {};
  }
  /// The SIGTERM of a stop (the workload runs on through its grace).
  std::vector<std::string> stop_requests;
  base::Status RequestStop(const std::string& id) override {
    stop_requests.push_back(id);
    return {};
  }
  base::Status Remove(const std::string& id) override {
    running.erase(id);
    lost.erase(id);
    return {};
  }
  bool Lost(const std::string& id) override { return lost.contains(id); }
};

}  // namespace gpunet::testing

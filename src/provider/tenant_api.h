// The tenant-facing process of the provider daemon (issue 17 item 5;
// docs/tenant-api.md "Endpoints", "Two processes").
//
// `gpunet provider api` runs this as an unprivileged user with nothing but its
// inherited descriptors: the broker sockets to the agent (broker_client.h) and the
// TLS key, which it reads into memory and closes. It parses everything a tenant
// sends — TLS, HTTP (server::HttpServer and its limits), the raw request-target
// (client/tenant_request.h's rules, then ParseTenantRoute), the signature headers,
// the manifest (strict parser, canonical form), secrets' JSON, upload chunks and
// their SHA-256 — and forwards one broker frame per request with the signed fields
// verbatim, for the agent to verify again and act on. What the agent answers (a
// kReply frame) becomes the HTTP answer. Every refusal is JSON
// {"error":{"code","message"}}.
//
// It checks each signed request's signature itself too (it knows the chain id and
// this provider's address), before anything is counted for it, so a badly signed
// request never holds a long-poll slot; who may act on the lease only the agent knows.
// GET /leases/{id}/session (docs/tenant-api.md "Sessions") upgrades the connection:
// the agent's yes comes with a socket to the lease's in-sandbox init, and the server
// relays bytes between it and the tenant's TLS stream, parsing none of them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "base/thread_annotations.h"
#include "crypto/address.h"
#include "provider/broker_client.h"
#include "provider/broker_wire.h"
#include "server/http_server.h"

namespace gpunet::provider {

inline constexpr uint64_t kTenantWaitMsMax = 25'000;             ///< events / log follow
inline constexpr uint64_t kTenantLogReadBytesMax = 1u << 20;     ///< one log read
inline constexpr uint64_t kTenantChunkBytesMax = 8u << 20;       ///< one upload chunk
inline constexpr uint64_t kTenantOutputReadBytesMax = 8u << 20;  ///< one output read
inline constexpr size_t kTenantSecretsBytesMax = 64u << 10;
inline constexpr size_t kTenantRevokeBytesMax = 4u << 10;
/// Long-polls (events or logs with wait_ms > 0) that may wait at once on one lease for
/// one signer (counted once its signature verified); the next gets 429. Each holds a
/// broker descriptor for up to kTenantWaitMsMax, so all leases together may hold every
/// descriptor but one (a short request always finds one free); past that a long-poll
/// gets 503. Across signers (a tenant's grant keys) the agent caps them per lease
/// (kBrokerLongPollsPerLeaseMax, counted once it allowed the request).
inline constexpr size_t kTenantLongPollsPerLeaseMax = 2;
/// The Upgrade token of an interactive session (docs/tenant-api.md "Sessions").
inline constexpr std::string_view kSessionProtocol = "gpunet-session/1";
/// Live sessions (relays) per lease, counted once the agent said yes; the next gets
/// 429. Per tenant (the leases' tenant on the ledger, which the agent's yes names),
/// so one tenant's leases never take them all; the next gets 429. And in all, for
/// every lease together; the next gets 503.
inline constexpr size_t kTenantSessionsPerLeaseMax = 16;
inline constexpr size_t kTenantSessionsPerTenantMax = 32;
inline constexpr size_t kTenantSessionsMax = 64;
inline constexpr std::string_view kChunkSha256Header = "Gpunet-Chunk-Sha256";
/// Reply fields of the agent that travel to the tenant as response headers.
inline constexpr std::string_view kNextOffsetHeader = "Gpunet-Next-Offset";
inline constexpr std::string_view kEndedHeader = "Gpunet-Ended";
inline constexpr std::string_view kSizeHeader = "Gpunet-Size";

/// What a request asks for, from its method and raw target alone.
struct TenantRoute {
  BrokerOp op = BrokerOp::kEnvironments;
  uint64_t lease_id = 0;
  bool signed_request = true;  ///< all but GET /environments
  size_t body_bytes_max = 0;   ///< bigger bodies get 413
  /// The op's own fields (path, offset, after, ...), values in canonical form.
  std::map<std::string, std::string> fields;
};

/// Routes a request by its method and raw request-target (docs/tenant-api.md
/// "Endpoints"). The target must first pass client::CheckRequestTarget (no encoded
/// '/', '\' or NUL, no "." or ".." segment, ...); the lease id is plain decimal
/// without leading zeros, 1 to 2^64-1; path segments after files/ and outputs/ are
/// percent-decoded and joined with '/'; the query holds only the route's own names,
/// each once, with strict decimal values within their caps. Errors: kInvalidArgument
/// (400), kNotFound (404: no such endpoint), kUnsupported (405: the path exists
/// under another method; the message names it).
[[nodiscard]] base::Result<TenantRoute> ParseTenantRoute(std::string_view method,
                                                         std::string_view target);

/// The tenant API's server limits: a public listener (no loopback exemption), bodies
/// up to one upload chunk, enough workers for every broker descriptor to long-poll.
server::ServerOptions TenantApiServerDefaults(size_t broker_fds);

struct TenantApiOptions {
  server::ServerOptions server = TenantApiServerDefaults(4);  ///< tls is set from below
  std::string cert_file;  ///< PEM certificate (chain), readable by the process
  std::string key_pem;    ///< the key itself (read from the inherited descriptor)
  /// What every request's signature covers beside the request: the chain and this
  /// provider (client::RequestScope). Required.
  std::string chain_id;
  crypto::Address provider;
};

/// The HTTPS server and its routes; the broker must outlive it.
class TenantApi {
 public:
  TenantApi(TenantApiOptions options, BrokerClient& broker);
  ~TenantApi();
  TenantApi(const TenantApi&) = delete;
  TenantApi& operator=(const TenantApi&) = delete;

  [[nodiscard]] base::Status Start();
  uint16_t Port() const;
  void Stop();
  server::ServerStats Stats() const;
  /// Live sessions of a lease (0 for none), and of all leases.
  size_t SessionsOf(uint64_t lease_id) const;
  size_t Sessions() const;

  /// One request as the server hands it over (exposed for the tests of refusals).
  server::Response Serve(const server::Request& request);

 private:
  /// (lease id, the signer's public key in hex): whose long-polls are counted.
  using PollKey = std::pair<uint64_t, std::string>;
  /// Counts a long-poll in (kTenantLongPollsPerLeaseMax per lease and signer, the
  /// broker's descriptors but one), or the refusal that says which cap it met.
  std::optional<server::Response> AdmitLongPoll(const PollKey& key);
  void EndLongPoll(const PollKey& key);
  /// GET /leases/{id}/session, its frame built and its signature checked.
  server::Response OpenSession(const BrokerFrame& frame);
  /// The refusal when the lease, its tenant (when known: the agent's yes names it) or
  /// the process is at its session cap; with `tenant`, counts one in when none is
  /// (under one lock, so the caps hold exactly).
  std::optional<server::Response> SessionCap(uint64_t lease_id, const std::string* tenant);
  void EndSession(uint64_t lease_id, const std::string& tenant);

  const std::string m_chain_id;
  const crypto::Address m_provider;
  BrokerClient& m_broker;
  // Before m_server: a relay the server drops as it is destroyed still ends its count.
  mutable base::Mutex m_polls_mu;
  std::map<PollKey, size_t> m_polls GUARDED_BY(m_polls_mu);  ///< waiting now
  size_t m_polls_total GUARDED_BY(m_polls_mu) = 0;
  std::map<uint64_t, size_t> m_sessions GUARDED_BY(m_polls_mu);            ///< lease id -> live
  std::map<std::string, size_t> m_tenant_sessions GUARDED_BY(m_polls_mu);  ///< tenant -> live
  size_t m_sessions_total GUARDED_BY(m_polls_mu) = 0;
  std::unique_ptr<server::HttpServer> m_server;
};

/// Reads a PEM key from an inherited descriptor (at most 64 KiB) and closes it.
[[nodiscard]] base::Result<std::string> ReadKeyFromFd(int fd);

struct RunTenantApiOptions {
  TenantApiOptions api;  ///< key_pem is read from key_fd
  std::vector<int> broker_fds;
  int key_fd = -1;
};

/// `gpunet provider api`: reads the key, serves until every broker descriptor has
/// closed (the agent stopped or drops this process), then stops the server.
/// `on_started` (if set) gets the bound port once serving.
[[nodiscard]] base::Status RunTenantApi(RunTenantApiOptions options,
                                        const std::function<void(uint16_t)>& on_started = {});

}  // namespace gpunet::provider

// The tenant's client of a provider's tenant API (docs/tenant-api.md): HTTPS (TLS 1.2
// or newer) pinned to the key the ledger holds for the provider, every request signed
// (tenant_request.h) with the tenant key or a delegated session key and its grant.
//
// Pinning: the ledger's tls_fingerprint (MsgProviderRegister / MsgProviderUpdate) is the
// SHA-256 of the DER SubjectPublicKeyInfo of the tenant API's certificate. The client
// checks it inside the TLS handshake, so a server with any other key is refused before
// a single byte of the request is written (kPermissionDenied, with both fingerprints
// and what to check). No certificate authority is consulted: the ledger is the trust
// root, and a provider may serve a self-signed certificate.
//
// One request per connection, synchronous, thread-compatible (one call at a time per
// object). Beast and OpenSSL stay inside tenant_client.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/result.h"
#include "client/tenant_request.h"
#include "crypto/ed25519.h"

namespace gpunet::client {

/// "https://host:port" split up (the tenant_api_uri a provider registered).
struct TenantApiUrl {
  std::string host;
  uint16_t port = 443;
  std::string base;  ///< "https://host:port", no trailing slash
};

/// Parses "https://host[:port][/]"; anything else is kInvalidArgument with the
/// expected form. (An IPv6 literal goes in brackets: https://[::1]:8443.)
[[nodiscard]] base::Result<TenantApiUrl> ParseTenantApiUrl(std::string_view url);

struct TenantClientOptions {
  std::string url;                     ///< the provider's tenant_api_uri, https://host:port
  base::Hash32 spki_sha256;            ///< the provider's tls_fingerprint as the ledger holds it
  RequestScope scope;                  ///< chain id, provider address, lease id
  int64_t connect_timeout_ms = 5'000;  ///< TCP connect and TLS handshake
  /// Writing the request and reading the response (a download: each read, so a large
  /// file that keeps coming is not cut).
  int64_t request_timeout_ms = 60'000;
  size_t response_bytes_max = 16 * 1024 * 1024;  ///< answers read into memory
  uint64_t download_bytes_max = 1ull << 40;      ///< a streamed download
  const base::Clock* clock = nullptr;            ///< the timestamps; SystemClock when null
};

struct TenantResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  HeaderList headers;  ///< every header of the answer, as received

  /// The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

/// A connection after `101 Switching Protocols`: its raw bytes both ways over the
/// pinned TLS session. One Read and one Write may wait at once, on two threads; two
/// Writes (or two Reads) at once are a bug.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  /// Waits for bytes and copies up to out.size() of them; 0 when the other side
  /// ended the stream.
  [[nodiscard]] virtual base::Result<size_t> Read(std::span<uint8_t> out) = 0;
  /// Writes all of `bytes`.
  [[nodiscard]] virtual base::Status Write(std::string_view bytes) = 0;
  /// Ends the connection at once; a Read or Write that waits returns an error, and
  /// later ones fail.
  virtual void Close() = 0;
};

/// What an upgrade request got: the answer's head (and its body when it was not 101)
/// and, after 101 with the protocol asked for, the stream.
struct TenantUpgrade {
  TenantResponse response;
  std::unique_ptr<ByteStream> stream;
};

class TenantClient {
 public:
  /// Signs with `key`; with `grant`, `key` must be the grant's session key (the first
  /// request fails with kInvalidArgument otherwise).
  TenantClient(TenantClientOptions options, const crypto::KeyPair& key,
               std::optional<DelegationGrant> grant = std::nullopt);

  /// A signed GET of `target` (path and query, sent byte for byte as signed).
  base::Result<TenantResponse> Get(std::string_view target);
  /// A signed POST with `body`.
  base::Result<TenantResponse> Post(std::string_view target, std::string_view body,
                                    std::string_view content_type = "application/json");
  /// A signed PUT with `body` and `extra` headers (an upload chunk and its
  /// Gpunet-Chunk-Sha256). The extra headers are not signed: the body hash is.
  base::Result<TenantResponse> Put(std::string_view target, std::string_view body,
                                   const HeaderList& extra = {});
  /// An unsigned GET (GET /environments, which a client reads before any money moves).
  base::Result<TenantResponse> GetUnsigned(std::string_view target);
  /// A signed GET whose 200 body is streamed to `path` (through `path`.part, renamed
  /// when complete; removed on failure). Another status comes back with its body in
  /// memory and nothing written.
  base::Result<TenantResponse> Download(std::string_view target, const std::string& path);

  /// A signed GET of `target` with `Connection: Upgrade` and `Upgrade: protocol`
  /// (docs/tenant-api.md "Sessions"). On `101` naming `protocol` the connection stays
  /// open as the stream, with no timeout; any other answer comes back with its body
  /// and no stream (a 101 for another protocol is kCorrupt).
  base::Result<TenantUpgrade> Upgrade(std::string_view target, std::string_view protocol);

  const TenantClientOptions& Options() const { return m_options; }

  struct Exchange;

 private:
  base::Result<TenantResponse> Send(std::string_view method, std::string_view target,
                                    std::string_view body, std::string_view content_type, bool sign,
                                    const std::string* download_path, const HeaderList& extra = {});
  /// The Gpunet-* headers that sign one request.
  base::Result<HeaderList> AuthHeaders(std::string_view method, std::string_view target,
                                       std::string_view body) const;
  /// TCP and the pinned TLS handshake.
  base::Result<std::unique_ptr<Exchange>> Connect(const TenantApiUrl& url) const;
  /// Writes the request and reads the answer's header (the body is left to ReadBody
  /// or ReadFile).
  base::Result<TenantResponse> RequestHead(Exchange& ex, const TenantApiUrl& url,
                                           std::string_view method, std::string_view target,
                                           std::string_view body, const HeaderList& headers,
                                           bool upgrade = false) const;
  base::Status ReadBody(Exchange& ex, std::string_view what, TenantResponse& out) const;
  base::Status ReadFile(Exchange& ex, std::string_view what, const std::string& path) const;

  TenantClientOptions m_options;
  crypto::KeyPair m_key;
  std::optional<DelegationGrant> m_grant;
};

}  // namespace gpunet::client

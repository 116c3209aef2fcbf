// Inside src/server only: a connection upgraded to a byte relay (relay_session.cpp),
// made from the HTTP session whose handler answered with an UpgradeTarget.
#pragma once

#include <memory>
#include <string>

#include "server/http_server_impl.h"
#include "server/ws_session.h"

namespace gpunet::server {

/// Bytes read at once from each side; a side is read again only once what it gave
/// was written to the other, so a relay holds at most this much per direction.
inline constexpr size_t kRelayBufferBytes = 64 * 1024;

/// Takes over the HTTP session's connection (plain or TLS) after its `101` went
/// out, registers the relay with the server and starts copying. `leftover`: bytes
/// the client sent after its request, already read into the HTTP session's buffer;
/// they go to the descriptor first. On the HTTP session's strand.
void StartRelaySession(HttpServer::Impl& server, Peer peer, boost::beast::tcp_stream&& stream,
                       std::string leftover, std::shared_ptr<UpgradeTarget> target);
void StartRelaySession(HttpServer::Impl& server, Peer peer, TlsStream&& stream,
                       std::string leftover, std::shared_ptr<UpgradeTarget> target);

}  // namespace gpunet::server

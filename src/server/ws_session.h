// Inside src/server only: one websocket subscriber (ws_session.cpp), made from the
// HTTP session whose request asked for the upgrade.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "server/http_server_impl.h"

namespace gpunet::server {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
using UpgradeRequest = boost::beast::http::request<boost::beast::http::string_body>;

/// The socket under a stream, for shutdown and close.
inline tcp::socket& RawSocket(tcp::socket& socket) {
  return socket;
}
inline tcp::socket& RawSocket(boost::beast::tcp_stream& stream) {
  return stream.socket();
}

/// Takes over the HTTP session's connection (plain or TLS), registers the websocket
/// with the server and answers `request`'s upgrade. On the HTTP session's strand.
void StartWsSession(HttpServer::Impl& server, Peer peer, boost::beast::tcp_stream&& stream,
                    std::set<std::string> topics, UpgradeRequest request);
void StartWsSession(HttpServer::Impl& server, Peer peer, TlsStream&& stream,
                    std::set<std::string> topics, UpgradeRequest request);

}  // namespace gpunet::server

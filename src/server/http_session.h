// Inside src/server only: one HTTP connection (http_session.cpp).
#pragma once

#include <memory>

#include "server/http_server_impl.h"

namespace gpunet::server {

/// A session for an accepted socket: HTTPS when the server has a TLS context, plain
/// HTTP otherwise. The caller registers it, then Run()s it.
std::shared_ptr<HttpSessionBase> NewHttpSession(HttpServer::Impl& server, Peer peer,
                                                tcp::socket socket);

}  // namespace gpunet::server

// Inside src/server only: the TLS context a server with ServerOptions::tls serves
// with (tls.cpp).
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "base/result.h"
#include "server/http_server.h"

namespace gpunet::server {

/// A server context: TLS 1.2 or newer, the certificate chain and private key of
/// `files`, checked to belong together. Every failure names the file and what to do:
/// kInvalidArgument for a file not given, not PEM, or a key not the certificate's;
/// kIo for a file that cannot be read.
base::Result<std::unique_ptr<boost::asio::ssl::context>> MakeTlsContext(const TlsOptions& files);

}  // namespace gpunet::server

// The one translation unit that compiles Boost.Asio's SSL layer (separate compilation mode), for
// the Kubernetes API client; only the control library links OpenSSL's SSL part.
#include <boost/asio/ssl/impl/src.hpp>

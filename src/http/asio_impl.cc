// The one translation unit that compiles Boost.Asio and Boost.Beast (separate compilation mode),
// so the rest of the code base includes their headers without re-instantiating their internals.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>

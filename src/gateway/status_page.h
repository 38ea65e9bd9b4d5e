// The status page the admin listener serves at `/`: one self-contained HTML document (inline CSS
// and JavaScript, no external assets) that polls /admin/endpoints and /metrics and draws the
// fleet. The source is src/gateway/status_page.html; the build embeds it verbatim.
#pragma once

#include <string_view>

namespace tokenway {

// The page's bytes (UTF-8 HTML). Static storage; safe to call from any thread.
std::string_view StatusPageHtml();

}  // namespace tokenway

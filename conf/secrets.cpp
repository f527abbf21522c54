// Which names carry secrets, and how they are hidden.
//
// The rule is deliberately broad: masking a harmless value (say
// sasl.oauthbearer.token.endpoint.url) costs a little debugging comfort,
// printing a password costs a credential rotation. Substrings rather than an
// exact list, so that properties added by a future librdkafka are covered.

#include "conf/config.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace rpl::conf {

namespace {

constexpr std::string_view mask = "******";

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// URL query parameters that grant access without being named like a secret:
// a presigned URL's signature is as good as the key that made it.
bool is_secret_query_param(std::string_view name) {
    const std::string n = lower(name);
    return is_secret_key(n) || n == "sig" || contains(n, "signature");
}

}  // namespace

bool is_secret_key(std::string_view name) {
    const std::string n = lower(name);
    static constexpr std::array<std::string_view, 10> words = {
        "password", "passwd",     "secret",     "token",     "credential",
        "jaas",     "access_key", "access.key", "accesskey", "private",
    };
    for (const auto w : words) {
        if (contains(n, w)) return true;
    }
    // Key material: ssl.key.pem, ssl.key.location, ssl.keystore.*, and the
    // OAUTHBEARER config string, which holds the unsecured JWT's principal and
    // often a client secret.
    return n.starts_with("ssl.key.") || n.starts_with("ssl.keystore.") || n.ends_with(".key.pem") ||
           n.ends_with("_key.pem") || n == "sasl.oauthbearer.config" || n == "api_key" ||
           n == "apikey";
}

std::string masked(std::string_view name, std::string_view value) {
    if (value.empty() || !is_secret_key(name)) return std::string(value);
    return std::string(mask);
}

std::string masked_url(std::string_view url) {
    std::string out;
    std::size_t rest = 0;

    // Userinfo: scheme://user:password@host. The user part of an S3 URL is the
    // access key id, so the whole userinfo goes.
    const auto scheme_end = url.find("://");
    if (scheme_end != std::string_view::npos) {
        const std::size_t auth_start = scheme_end + 3;
        const std::size_t auth_end = std::min(url.find_first_of("/?#", auth_start), url.size());
        const std::string_view authority = url.substr(auth_start, auth_end - auth_start);
        const auto at = authority.rfind('@');
        out.append(url.substr(0, auth_start));
        if (at != std::string_view::npos) {
            out.append(mask);
            out.append(authority.substr(at));
        } else {
            out.append(authority);
        }
        rest = auth_end;
    }

    const auto q = url.find('?', rest);
    if (q == std::string_view::npos) {
        out.append(url.substr(rest));
        return out;
    }
    out.append(url.substr(rest, q + 1 - rest));
    const std::size_t fragment = std::min(url.find('#', q), url.size());
    std::string_view query = url.substr(q + 1, fragment - q - 1);
    bool first = true;
    while (true) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (!first) out.push_back('&');
        first = false;
        const auto eq = param.find('=');
        if (eq != std::string_view::npos && is_secret_query_param(param.substr(0, eq))) {
            out.append(param.substr(0, eq + 1));
            out.append(mask);
        } else {
            out.append(param);
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    out.append(url.substr(fragment));
    return out;
}

}  // namespace rpl::conf

#include "backup/s3_store.h"

#include "kafka/log.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace rpl::backup {

namespace {

constexpr std::uint64_t mib = 1ull << 20;
constexpr std::uint64_t min_part_size = 5 * mib;  // S3's minimum for every part but the last
constexpr std::uint64_t max_part_size = 5ull << 30;
constexpr std::uint64_t max_parts = 10000;
constexpr auto first_backoff = std::chrono::milliseconds(200);
constexpr auto max_backoff = std::chrono::milliseconds(10000);

bool is_unreserved(unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// Case-insensitive find of needle in hay from pos.
std::size_t ifind(std::string_view hay, std::string_view needle, std::size_t pos) {
    for (std::size_t i = pos; i + needle.size() <= hay.size(); ++i)
        if (iequals(hay.substr(i, needle.size()), needle)) return i;
    return std::string_view::npos;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// The raw content of the first element `name` at or after pos, and the
// position just past its end tag. Tags are matched exactly: <Key> does not
// match <KeyCount>.
struct element {
    std::string_view content;
    std::size_t end = 0;
};
Result<std::optional<element>> find_element(std::string_view xml, std::string_view name,
                                            std::size_t pos) {
    const std::string open = "<" + std::string(name);
    while (true) {
        const auto at = xml.find(open, pos);
        if (at == std::string_view::npos) return std::optional<element>{};
        auto after = at + open.size();
        if (after >= xml.size()) return fail(errc::corrupt, "unterminated <" + std::string(name));
        const char c = xml[after];
        if (c != '>' && c != '/' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            pos = after;  // a longer name, e.g. <KeyCount> when looking for <Key>
            continue;
        }
        const auto gt = xml.find('>', after);
        if (gt == std::string_view::npos)
            return fail(errc::corrupt, "unterminated <" + std::string(name) + " tag");
        if (xml[gt - 1] == '/') return std::optional<element>{element{{}, gt + 1}};  // <name/>
        const std::string close = "</" + std::string(name) + ">";
        const auto end = xml.find(close, gt + 1);
        if (end == std::string_view::npos)
            return fail(errc::corrupt, "<" + std::string(name) + "> has no " + close);
        return std::optional<element>{
            element{xml.substr(gt + 1, end - gt - 1), end + close.size()}};
    }
}

// The name of the document's root element ("" if none).
std::string_view root_name(std::string_view xml) {
    std::size_t pos = 0;
    while (pos < xml.size()) {
        const auto lt = xml.find('<', pos);
        if (lt == std::string_view::npos || lt + 1 >= xml.size()) return {};
        const char c = xml[lt + 1];
        if (c == '?' || c == '!') {  // prolog, comment, doctype
            const auto gt = xml.find('>', lt);
            if (gt == std::string_view::npos) return {};
            pos = gt + 1;
            continue;
        }
        auto end = lt + 1;
        while (end < xml.size() && xml[end] != '>' && xml[end] != '/' && xml[end] != ' ' &&
               xml[end] != '\t' && xml[end] != '\r' && xml[end] != '\n')
            ++end;
        return xml.substr(lt + 1, end - lt - 1);
    }
    return {};
}

Result<std::uint64_t> parse_u64(std::string_view s, std::string_view what) {
    if (s.empty() || s.size() > 20)
        return fail(errc::corrupt, std::string(what) + " '" + std::string(s) + "' is not a number");
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return fail(errc::corrupt,
                        std::string(what) + " '" + std::string(s) + "' is not a number");
        const std::uint64_t next = v * 10 + static_cast<std::uint64_t>(c - '0');
        if (next / 10 != v)
            return fail(errc::corrupt, std::string(what) + " '" + std::string(s) + "' overflows");
        v = next;
    }
    return v;
}

bool valid_bucket(std::string_view b, std::string& why) {
    if (b.size() < 3 || b.size() > 63) {
        why = "must be 3 to 63 characters long";
        return false;
    }
    for (char c : b) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
            why = "may only contain lower-case letters, digits, '.' and '-'";
            return false;
        }
    }
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!alnum(b.front()) || !alnum(b.back())) {
        why = "must begin and end with a letter or digit";
        return false;
    }
    if (b.find("..") != std::string_view::npos) {
        why = "must not contain '..'";
        return false;
    }
    return true;
}

// http(s)://host[:port][/] -> normalized "scheme://host[:port]"; "" + why if bad.
std::string check_endpoint(std::string_view ep, std::string& why) {
    std::string_view rest;
    std::string scheme;
    if (ep.substr(0, 7) == "http://") {
        scheme = "http://";
        rest = ep.substr(7);
    } else if (ep.substr(0, 8) == "https://") {
        scheme = "https://";
        rest = ep.substr(8);
    } else {
        why = "must start with http:// or https://";
        return {};
    }
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.empty()) {
        why = "has no host";
        return {};
    }
    if (rest.find('@') != std::string_view::npos) {
        why = "must not hold credentials (use access_key/secret_key or the environment)";
        return {};
    }
    if (rest.find_first_of("/?#") != std::string_view::npos) {
        why = "must be scheme://host[:port] without a path or query";
        return {};
    }
    std::string_view host = rest;
    std::string_view port;
    if (rest.front() == '[') {  // [ipv6]:port
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            why = "has an unterminated IPv6 address";
            return {};
        }
        host = rest.substr(0, close + 1);
        auto after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                why = "has junk after the IPv6 address";
                return {};
            }
            port = after.substr(1);
        }
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (host.empty()) {
            why = "has no host";
            return {};
        }
    }
    for (char c : host) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            why = "has a space in its host";
            return {};
        }
    }
    if (!port.empty() || (rest.back() == ':')) {
        auto p = parse_u64(port, "port");
        if (!p || p.value() == 0 || p.value() > 65535) {
            why = "has an invalid port '" + std::string(port) + "'";
            return {};
        }
    }
    return scheme + std::string(rest);
}

}  // namespace

// --- URLs and encoding -------------------------------------------------------

std::string mask_url(std::string_view url) {
    // Raw "scheme://user:pass@host" and its percent-encoded form inside a
    // query value ("http%3A%2F%2Fuser%3Apass%40host").
    struct form {
        std::string_view sep, at;
        std::vector<std::string_view> ends;
    };
    const form forms[] = {{"://", "@", {"/", "?", "#", "&"}},
                          {"%3A%2F%2F", "%40", {"%2F", "%3F", "%23", "&", "/", "?", "#"}}};
    std::string out(url);
    for (const auto& f : forms) {
        std::size_t pos = 0;
        while ((pos = ifind(out, f.sep, pos)) != std::string::npos) {
            const auto start = pos + f.sep.size();
            std::size_t end = out.size();
            for (auto e : f.ends) end = std::min(end, ifind(out, e, start));
            // the last '@' before the end of the authority ends the userinfo
            std::size_t at = std::string::npos;
            for (auto p = ifind(out, f.at, start); p != std::string::npos && p < end;
                 p = ifind(out, f.at, p + 1))
                at = p;
            if (at != std::string::npos) out.replace(start, at - start, "***");
            pos = start;
        }
    }
    return out;
}

std::string s3_uri_encode(std::string_view s, bool keep_slash) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size() * 3);
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    return out;
}

Result<std::string> s3_uri_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size())
            return fail(errc::invalid_config, "truncated percent-escape at byte " +
                                                  std::to_string(i) + " of '" + std::string(s) +
                                                  "'");
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0)
            return fail(errc::invalid_config, "bad percent-escape '" + std::string(s.substr(i, 3)) +
                                                  "' in '" + std::string(s) + "'");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string s3_query(std::vector<std::pair<std::string, std::string>> params) {
    for (auto& [k, v] : params) {
        k = s3_uri_encode(k, false);
        v = s3_uri_encode(v, false);
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [k, v] : params) {
        if (!out.empty()) out += '&';
        out += k;
        out += '=';
        out += v;
    }
    return out;
}

std::string s3_request_url(const s3_location& loc, std::string_view full_key) {
    std::string url;
    if (loc.path_style) {
        url = loc.endpoint + "/" + loc.bucket;
        if (!full_key.empty()) url += "/" + s3_uri_encode(full_key, true);
        return url;
    }
    const auto sep = loc.endpoint.find("://");
    url = loc.endpoint.substr(0, sep + 3) + loc.bucket + "." + loc.endpoint.substr(sep + 3) + "/" +
          s3_uri_encode(full_key, true);
    return url;
}

Result<s3_location> parse_s3_url(std::string_view url, std::string_view default_region) {
    s3_location loc;
    loc.masked_url = mask_url(url);
    const std::string where = "store URL '" + loc.masked_url + "': ";
    if (url.size() < 5 || !iequals(url.substr(0, 5), "s3://"))
        return fail(errc::invalid_config, where + "an S3 store URL starts with s3://");
    std::string_view rest = url.substr(5);
    if (rest.find('#') != std::string_view::npos)
        return fail(errc::invalid_config, where + "a fragment ('#') is not allowed");
    std::string_view query;
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (authority.find('@') != std::string_view::npos)
        return fail(errc::invalid_config,
                    where +
                        "credentials do not belong in the URL; set access_key/secret_key "
                        "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    if (authority.empty()) return fail(errc::invalid_config, where + "the bucket name is missing");
    std::string why;
    if (!valid_bucket(authority, why))
        return fail(errc::invalid_config,
                    where + "bucket name '" + std::string(authority) + "' " + why);
    loc.bucket = std::string(authority);

    {
        auto decoded = s3_uri_decode(path);
        if (!decoded)
            return fail(errc::invalid_config, where + "prefix: " + decoded.error().message);
        std::string prefix = std::move(decoded).value();
        while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
        if (!prefix.empty() && prefix.back() != '/') prefix += '/';
        loc.prefix = std::move(prefix);
    }

    std::optional<std::string> region, endpoint;
    std::optional<bool> path_style;
    // A message about one query parameter: `where` followed by the parts.
    const auto bad_param = [&where](std::initializer_list<std::string_view> parts) {
        std::string message = where;
        for (const auto part : parts) message += part;
        return fail(errc::invalid_config, std::move(message));
    };
    std::size_t pos = 0;
    while (pos <= query.size() && !query.empty()) {
        auto amp = query.find('&', pos);
        if (amp == std::string_view::npos) amp = query.size();
        const auto item = query.substr(pos, amp - pos);
        pos = amp + 1;
        if (item.empty()) continue;
        const auto eq = item.find('=');
        const std::string name(item.substr(0, eq));
        if (eq == std::string_view::npos || eq + 1 == item.size())
            return bad_param({"parameter '", name, "' has no value"});
        auto value = s3_uri_decode(item.substr(eq + 1));
        if (!value) return bad_param({"parameter '", name, "': ", value.error().message});
        if (name == "region") {
            if (region) return fail(errc::invalid_config, where + "parameter 'region' given twice");
            for (char c : value.value())
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                    return fail(errc::invalid_config, where + "region '" + value.value() +
                                                          "' may only contain a-z, 0-9 and '-'");
            region = value.value();
        } else if (name == "endpoint") {
            if (endpoint)
                return fail(errc::invalid_config, where + "parameter 'endpoint' given twice");
            auto ep = check_endpoint(value.value(), why);
            if (ep.empty()) {
                // the value itself may hold credentials: name it only masked
                return bad_param({"endpoint '", mask_url(value.value()), "' ", why});
            }
            endpoint = std::move(ep);
        } else if (name == "path_style") {
            if (path_style)
                return fail(errc::invalid_config, where + "parameter 'path_style' given twice");
            if (value.value() == "true" || value.value() == "1") {
                path_style = true;
            } else if (value.value() == "false" || value.value() == "0") {
                path_style = false;
            } else {
                return fail(
                    errc::invalid_config,
                    where + "path_style must be true or false, not '" + value.value() + "'");
            }
        } else {
            return bad_param(
                {"unknown parameter '", name, "' (known: region, endpoint, path_style)"});
        }
    }
    loc.region = region ? *region : std::string(default_region);
    if (loc.region.empty()) return fail(errc::invalid_config, where + "no region");
    loc.endpoint = endpoint ? *endpoint : "https://s3." + loc.region + ".amazonaws.com";
    loc.path_style = path_style
                         ? *path_style
                         : (endpoint.has_value() || loc.bucket.find('.') != std::string::npos);
    return loc;
}

// --- XML ---------------------------------------------------------------------

Result<std::string> xml_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '&') {
            out += text[i];
            continue;
        }
        const auto semi = text.find(';', i);
        if (semi == std::string_view::npos || semi - i > 12)
            return fail(errc::corrupt,
                        "unterminated XML entity at '" + std::string(text.substr(i, 12)) + "'");
        const auto ent = text.substr(i + 1, semi - i - 1);
        if (ent == "amp") {
            out += '&';
        } else if (ent == "lt") {
            out += '<';
        } else if (ent == "gt") {
            out += '>';
        } else if (ent == "quot") {
            out += '"';
        } else if (ent == "apos") {
            out += '\'';
        } else if (ent.size() >= 2 && ent[0] == '#') {
            const bool hex = ent[1] == 'x' || ent[1] == 'X';
            const auto digits = ent.substr(hex ? 2 : 1);
            std::uint32_t cp = 0;
            if (digits.empty() || digits.size() > 8)
                return fail(errc::corrupt, "bad character reference '&" + std::string(ent) + ";'");
            for (char c : digits) {
                const int d = hex ? hex_value(c) : (c >= '0' && c <= '9' ? c - '0' : -1);
                if (d < 0)
                    return fail(errc::corrupt,
                                "bad character reference '&" + std::string(ent) + ";'");
                cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(d);
            }
            if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return fail(errc::corrupt, "character reference '&" + std::string(ent) +
                                               ";' is not a valid code point");
            append_utf8(out, cp);
        } else {
            return fail(errc::corrupt, "unknown XML entity '&" + std::string(ent) + ";'");
        }
        i = semi;
    }
    return out;
}

std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

Result<std::optional<std::string>> xml_first(std::string_view xml, std::string_view name) {
    RPL_TRY(el, find_element(xml, name, 0));
    if (!el) return std::optional<std::string>{};
    RPL_TRY(text, xml_decode(el->content));
    return std::optional<std::string>{std::move(text)};
}

Result<s3_list_page> parse_list_objects_v2(std::string_view xml) {
    if (root_name(xml) != "ListBucketResult")
        return fail(errc::corrupt, "not a ListBucketResult document");
    s3_list_page page;
    std::size_t pos = 0;
    while (true) {
        RPL_TRY(contents, find_element(xml, "Contents", pos));
        if (!contents) break;
        pos = contents->end;
        RPL_TRY(key, xml_first(contents->content, "Key"));
        if (!key || key->empty()) return fail(errc::corrupt, "a <Contents> has no <Key>");
        RPL_TRY(size_text, xml_first(contents->content, "Size"));
        if (!size_text)
            return fail(errc::corrupt, "<Contents> of key '" + *key + "' has no <Size>");
        RPL_TRY(size, parse_u64(*size_text, "<Size> of key '" + *key + "'"));
        page.objects.push_back(object_info{std::move(*key), size});
    }
    RPL_TRY(truncated, xml_first(xml, "IsTruncated"));
    if (truncated && *truncated != "true" && *truncated != "false")
        return fail(errc::corrupt, "<IsTruncated> is '" + *truncated + "', not true or false");
    page.truncated = truncated && *truncated == "true";
    if (page.truncated) {
        RPL_TRY(token, xml_first(xml, "NextContinuationToken"));
        if (!token || token->empty())
            return fail(errc::corrupt, "a truncated page has no <NextContinuationToken>");
        page.next_token = std::move(*token);
    }
    return page;
}

std::optional<s3_error_body> parse_s3_error(std::string_view xml) {
    if (root_name(xml) != "Error") return std::nullopt;
    s3_error_body e;
    auto code = xml_first(xml, "Code");
    if (code && code.value()) e.code = *code.value();
    auto message = xml_first(xml, "Message");
    if (message && message.value()) e.message = *message.value();
    return e;
}

Result<std::string> parse_upload_id(std::string_view xml) {
    RPL_TRY(id, xml_first(xml, "UploadId"));
    if (!id || id->empty()) return fail(errc::corrupt, "the answer has no <UploadId>");
    return std::move(*id);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> plan_parts(std::uint64_t size,
                                                                std::uint64_t part_size) {
    if (part_size == 0) part_size = min_part_size;
    if ((size + part_size - 1) / part_size > max_parts) {
        part_size = (size + max_parts - 1) / max_parts;
        part_size = (part_size + mib - 1) / mib * mib;
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> parts;
    for (std::uint64_t off = 0; off < size; off += part_size)
        parts.emplace_back(off, std::min(part_size, size - off));
    if (parts.empty()) parts.emplace_back(0, 0);
    return parts;
}

// --- the store ---------------------------------------------------------------

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct curl_deleter {
    void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
using curl_ptr = std::unique_ptr<CURL, curl_deleter>;
struct slist_deleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

// Idle easy handles, so requests reuse connections. A handle is used by one
// thread at a time: taken under the lock, given back after the request.
class handle_pool {
public:
    curl_ptr take() {
        {
            std::lock_guard lock(mu_);
            if (!idle_.empty()) {
                curl_ptr h = std::move(idle_.back());
                idle_.pop_back();
                return h;
            }
        }
        return curl_ptr(curl_easy_init());
    }
    void give(curl_ptr h) {
        std::lock_guard lock(mu_);
        if (idle_.size() < 8) idle_.push_back(std::move(h));
    }

private:
    std::mutex mu_;
    std::vector<curl_ptr> idle_;
};

struct request {
    const char* method = "GET";
    std::string full_key;  // "" addresses the bucket
    std::vector<std::pair<std::string, std::string>> query;
    std::string_view body;
    bool has_body = false;
    const char* content_type = nullptr;
    bool error_in_200 = false;  // CompleteMultipartUpload: 200 may carry an <Error>
};

struct response {
    long status = 0;
    std::string body;
    std::string etag;
};

using clock = std::chrono::steady_clock;

struct attempt {
    CURLcode code = CURLE_OK;
    std::string curl_error;
    response resp;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    std::string_view line(data, size * n);
    if (line.size() > 5 && iequals(line.substr(0, 5), "etag:")) {
        line.remove_prefix(5);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
            line.remove_prefix(1);
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' '))
            line.remove_suffix(1);
        static_cast<response*>(user)->etag = std::string(line);
    }
    return size * n;
}

bool transport_retryable(CURLcode c) {
    switch (c) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_READ_ERROR: return true;
        default: return false;
    }
}

bool retryable_code(std::string_view code) {
    return code == "SlowDown" || code == "InternalError" || code == "ServiceUnavailable" ||
           code == "RequestTimeout" || code == "Throttling";
}

class s3_store final : public object_store {
public:
    s3_store(s3_location loc, const store_options& options, std::string access_key,
             std::string secret_key, std::string session_token)
        : loc_(std::move(loc)),
          options_(options),
          access_key_(std::move(access_key)),
          secret_key_(std::move(secret_key)),
          session_token_(std::move(session_token)),
          sigv4_("aws:amz:" + loc_.region + ":s3"),
          log_("s3 " + loc_.masked_url) {
        options_.secret_key.clear();  // kept once, in secret_key_
        options_.access_key.clear();
    }

    const std::string& describe() const noexcept override { return loc_.masked_url; }

    Result<void> put(std::string_view key, std::string_view data) override {
        RPL_TRY(check_key(key, "put"));
        if (data.size() > options_.multipart_threshold)
            return put_multipart(key, data, call_deadline(data.size()));
        request r;
        r.method = "PUT";
        r.full_key = loc_.prefix + std::string(key);
        r.body = data;
        r.has_body = true;
        r.content_type = "application/octet-stream";
        RPL_TRY(resp, execute(r, "put", key, call_deadline(data.size())));
        if (resp.status != 200) return http_error(resp, "put", key);
        return ok();
    }

    Result<std::string> get(std::string_view key) override {
        RPL_TRY(check_key(key, "get"));
        request r;
        r.full_key = loc_.prefix + std::string(key);
        RPL_TRY(resp, execute(r, "get", key, call_deadline(0)));
        if (resp.status != 200) return http_error(resp, "get", key);
        return std::move(resp.body);
    }

    Result<std::vector<object_info>> list(std::string_view prefix) override {
        std::vector<object_info> out;
        std::string token;
        const std::string full_prefix = loc_.prefix + std::string(prefix);
        while (true) {
            request r;
            r.query = {{"list-type", "2"}, {"prefix", full_prefix}};
            if (!token.empty()) r.query.emplace_back("continuation-token", token);
            // Each page has its own deadline: a listing's length is the
            // bucket's, not a sign of a stuck server.
            RPL_TRY(resp, execute(r, "list", prefix, call_deadline(0)));
            if (resp.status != 200) return http_error(resp, "list", prefix);
            auto page = parse_list_objects_v2(resp.body);
            if (!page)
                return fail(errc::io, where("list", prefix) +
                                          ": bad ListObjectsV2 answer: " + page.error().message);
            for (auto& o : page.value().objects) {
                if (o.key.compare(0, loc_.prefix.size(), loc_.prefix) != 0)
                    return fail(errc::io, where("list", prefix) + ": the server listed key '" +
                                              o.key + "' outside the prefix");
                o.key.erase(0, loc_.prefix.size());
                out.push_back(std::move(o));
            }
            if (!page.value().truncated) break;
            if (page.value().next_token == token)
                return fail(errc::io,
                            where("list", prefix) + ": the server repeated the continuation token");
            token = std::move(page.value().next_token);
        }
        std::sort(out.begin(), out.end(),
                  [](const object_info& a, const object_info& b) { return a.key < b.key; });
        return out;
    }

    Result<void> remove(std::string_view key) override {
        RPL_TRY(check_key(key, "remove"));
        request r;
        r.method = "DELETE";
        r.full_key = loc_.prefix + std::string(key);
        RPL_TRY(resp, execute(r, "remove", key, call_deadline(0)));
        if (resp.status == 200 || resp.status == 204) return ok();
        if (resp.status == 404) {
            const auto e = parse_s3_error(resp.body);
            if (!e || e->code != "NoSuchBucket") return ok();  // already gone
        }
        return http_error(resp, "remove", key);
    }

    Result<void> check() override {
        request r;
        r.query = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", loc_.prefix}};
        RPL_TRY(resp, execute(r, "check", {}, call_deadline(0)));
        if (resp.status != 200) return http_error(resp, "check", {});
        return ok();
    }

private:
    // When a call that uploads `bytes` must have returned: operation_timeout
    // plus one second per MiB (a floor of 1 MiB/s for large puts).
    clock::time_point call_deadline(std::size_t bytes) const {
        return clock::now() + options_.operation_timeout +
               std::chrono::milliseconds(bytes * 1000 / (1u << 20));
    }

    std::string where(std::string_view op, std::string_view key) const {
        std::string s = "s3 store " + loc_.masked_url + ": " + std::string(op);
        if (!key.empty() || op == "put" || op == "get" || op == "remove") s += " " + quoted(key);
        return s;
    }

    Result<void> check_key(std::string_view key, std::string_view op) const {
        if (key.empty()) return fail(errc::internal, where(op, key) + ": empty key");
        return ok();
    }

    // An error for a final, non-success HTTP answer. Only the S3 error Code
    // and Message are quoted, never the body: AWS echoes the canonical request
    // (with x-amz-security-token) in SignatureDoesNotMatch bodies.
    Error http_error_value(const response& resp, std::string_view op, std::string_view key) const {
        const auto e = parse_s3_error(resp.body);
        std::string detail = "HTTP " + std::to_string(resp.status);
        if (e) {
            if (!e->code.empty()) detail += " " + e->code;
            if (!e->message.empty()) detail += ": " + e->message;
        } else if (resp.status == 404) {
            detail += " (no S3 error document)";
        }
        const std::string code = e ? e->code : "";
        if (code == "NoSuchBucket" || (resp.status == 404 && key.empty() && code.empty()))
            return Error{errc::not_found, where(op, key) + ": bucket '" + loc_.bucket +
                                              "' does not exist at " + loc_.endpoint + " (" +
                                              detail + ")"};
        if (resp.status == 404)
            return Error{errc::not_found, where(op, key) + ": no such object (" + detail + ")"};
        if (resp.status == 403 || resp.status == 401) {
            std::string hint =
                access_key_.empty()
                    ? "no credentials are configured (access_key/secret_key or "
                      "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
                    : "check access key '" + access_key_ + "', its secret key and its permissions";
            return Error{errc::io, where(op, key) + ": access denied (" + detail + "); " + hint};
        }
        return Error{errc::io, where(op, key) + ": " + detail};
    }
    boost::outcome_v2::failure_type<Error> http_error(const response& resp, std::string_view op,
                                                      std::string_view key) const {
        return boost::outcome_v2::failure(http_error_value(resp, op, key));
    }

    attempt perform(const request& r, clock::time_point deadline) {
        attempt a;
        curl_ptr h = pool_.take();
        if (!h) {
            a.code = CURLE_FAILED_INIT;
            a.curl_error = "curl_easy_init failed";
            return a;
        }
        CURL* c = h.get();
        curl_easy_reset(c);
        char errbuf[CURL_ERROR_SIZE] = {};
        std::string url = s3_request_url(loc_, r.full_key);
        if (!r.query.empty()) url += "?" + s3_query(r.query);

        slist_ptr headers;
        auto add = [&](const std::string& line) {
            curl_slist* n = curl_slist_append(headers.get(), line.c_str());
            if (n) {
                (void)headers.release();
                headers.reset(n);
            }
        };
        // libcurl 7.88 signs this value as the payload hash; without it a PUT
        // would be signed with the hash of an empty body.
        add("x-amz-content-sha256: UNSIGNED-PAYLOAD");
        if (!session_token_.empty()) add("x-amz-security-token: " + session_token_);
        if (r.content_type) add(std::string("Content-Type: ") + r.content_type);

        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // keys may hold "..": sign what we send
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
        if (!access_key_.empty()) {
            curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4_.c_str());
            curl_easy_setopt(c, CURLOPT_USERNAME, access_key_.c_str());
            curl_easy_setopt(c, CURLOPT_PASSWORD, secret_key_.c_str());
        }
        const long timeout_ms = static_cast<long>(options_.request_timeout.count());
        // The whole request, transfer included, ends at the call's deadline:
        // the stall limit below alone lets a server that trickles a byte a
        // second hold the call for ever.
        const long left_ms = std::max(
            1L, static_cast<long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now())
                        .count()));
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, left_ms));
        // A request that moves no byte for request_timeout fails (a large body
        // may take longer than that in total, which is fine).
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, (timeout_ms + 999) / 1000));
        if (std::string_view(r.method) == "GET") {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r.method);
        }
        if (r.has_body) {
            // POSTFIELDS does not copy; the caller's bytes outlive the request.
            // (never a null pointer: libcurl would then read the body from stdin)
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, r.body.empty() ? "" : r.body.data());
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(r.body.size()));
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.resp.body);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &a.resp);

        a.code = curl_easy_perform(c);
        if (a.code == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.resp.status);
        } else {
            a.curl_error = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(a.code);
        }
        // Nothing secret may stay behind in an idle handle.
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_reset(c);
        pool_.give(std::move(h));
        return a;
    }

    // Performs r, retrying what is worth retrying. Returns the final HTTP
    // answer (any status that is not retried); fails on a transport error,
    // when the attempts run out, or (errc::timeout) at the deadline.
    Result<response> execute(const request& r, std::string_view op, std::string_view key,
                             clock::time_point deadline) {
        const int attempts = std::max(1, options_.max_attempts);
        const auto overran = [&](int n, const std::string& last) {
            const auto budget =
                std::chrono::duration_cast<std::chrono::milliseconds>(options_.operation_timeout);
            return fail(errc::timeout, where(op, key) + ": no success from " + loc_.endpoint +
                                           " within the call's deadline (" +
                                           std::to_string(budget.count()) +
                                           " ms, plus 1 s per MiB put) after " + std::to_string(n) +
                                           " attempt(s); last: " + last);
        };
        auto delay = std::chrono::milliseconds(first_backoff);
        std::string last;
        bool transport = false;
        for (int n = 1;; ++n) {
            attempt a = perform(r, deadline);
            bool retry = false;
            if (a.code != CURLE_OK) {
                last = a.curl_error;
                transport = true;
                if (clock::now() >= deadline) return overran(n, last);
                if (!transport_retryable(a.code))
                    return fail(errc::io, where(op, key) + ": " + last);
                retry = true;
            } else {
                transport = false;
                // A 200 body is an object's bytes, never an error document,
                // except for CompleteMultipartUpload.
                const bool error_doc = a.resp.status != 200 || r.error_in_200;
                const auto e = error_doc ? parse_s3_error(a.resp.body) : std::nullopt;
                if (a.resp.status == 429 || a.resp.status >= 500 ||
                    (e && retryable_code(e->code))) {
                    retry = true;
                    last = http_error_value(a.resp, op, key).message;
                } else {
                    return std::move(a.resp);
                }
            }
            if (!retry || n >= attempts) break;
            if (clock::now() + delay >= deadline) return overran(n, last);
            log_.warn(std::string(op) + (key.empty() ? "" : " " + quoted(key)) + ": attempt " +
                      std::to_string(n) + "/" + std::to_string(attempts) + " failed (" + last +
                      "); retrying in " + std::to_string(delay.count()) + " ms");
            std::this_thread::sleep_for(delay);
            delay = std::min(delay * 2, std::chrono::milliseconds(max_backoff));
        }
        if (transport)
            return fail(errc::unreachable, where(op, key) + ": " + loc_.endpoint +
                                               " did not answer after " + std::to_string(attempts) +
                                               " attempt(s): " + last);
        return fail(errc::io, where(op, key) + ": failed after " + std::to_string(attempts) +
                                  " attempt(s): " + last);
    }

    Result<void> put_multipart(std::string_view key, std::string_view data,
                               clock::time_point deadline) {
        const std::string full_key = loc_.prefix + std::string(key);
        std::string upload_id;
        {
            request r;
            r.method = "POST";
            r.full_key = full_key;
            r.query = {{"uploads", ""}};
            r.has_body = true;
            r.content_type = "application/octet-stream";
            RPL_TRY(resp, execute(r, "put (create multipart upload)", key, deadline));
            if (resp.status != 200) return http_error(resp, "put (create multipart upload)", key);
            auto id = parse_upload_id(resp.body);
            if (!id)
                return fail(errc::io, where("put (create multipart upload)", key) + ": " +
                                          id.error().message);
            upload_id = std::move(id).value();
        }
        auto result = upload_parts(key, full_key, upload_id, data, deadline);
        if (!result) {
            // Best effort: an unfinished upload keeps its parts (and costs
            // storage) until aborted.
            request r;
            r.method = "DELETE";
            r.full_key = full_key;
            r.query = {{"uploadId", upload_id}};
            // Its own short deadline: the call's may be what just passed.
            auto resp = execute(r, "put (abort multipart upload)", key,
                                clock::now() + std::min(options_.request_timeout,
                                                        std::chrono::milliseconds(10000)));
            if (!resp || (resp.value().status != 204 && resp.value().status != 200 &&
                          resp.value().status != 404))
                log_.warn(where("put", key) + ": could not abort multipart upload " + upload_id +
                          (resp ? " (HTTP " + std::to_string(resp.value().status) + ")"
                                : ": " + resp.error().message));
        }
        return result;
    }

    Result<void> upload_parts(std::string_view key, const std::string& full_key,
                              const std::string& upload_id, std::string_view data,
                              clock::time_point deadline) {
        const auto parts = plan_parts(data.size(), options_.part_size);
        std::string complete = "<CompleteMultipartUpload>";
        for (std::size_t i = 0; i < parts.size(); ++i) {
            const std::string number = std::to_string(i + 1);
            const std::string op =
                "put (part " + number + " of " + std::to_string(parts.size()) + ")";
            request r;
            r.method = "PUT";
            r.full_key = full_key;
            r.query = {{"partNumber", number}, {"uploadId", upload_id}};
            r.body = data.substr(parts[i].first, parts[i].second);
            r.has_body = true;
            r.content_type = "application/octet-stream";
            RPL_TRY(resp, execute(r, op, key, deadline));
            if (resp.status != 200) return http_error(resp, op, key);
            if (resp.etag.empty())
                return fail(errc::io, where(op, key) + ": the answer has no ETag header");
            complete += "<Part><PartNumber>" + number + "</PartNumber><ETag>" +
                        xml_escape(resp.etag) + "</ETag></Part>";
        }
        complete += "</CompleteMultipartUpload>";
        request r;
        r.method = "POST";
        r.full_key = full_key;
        r.query = {{"uploadId", upload_id}};
        r.body = complete;
        r.has_body = true;
        r.content_type = "application/xml";
        r.error_in_200 = true;
        const char* op = "put (complete multipart upload)";
        RPL_TRY(resp, execute(r, op, key, deadline));
        if (resp.status != 200) return http_error(resp, op, key);
        if (const auto e = parse_s3_error(resp.body))
            return fail(errc::io,
                        where(op, key) + ": HTTP 200 with error " + e->code + ": " + e->message);
        return ok();
    }

    const s3_location loc_;
    store_options options_;  // credentials cleared; they live below
    const std::string access_key_;
    const std::string secret_key_;     // secret: never logged
    const std::string session_token_;  // secret: never logged
    const std::string sigv4_;
    const Logger log_;
    handle_pool pool_;
};

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

}  // namespace

Result<std::unique_ptr<object_store>> open_s3_store(std::string_view url,
                                                    const store_options& options) {
    std::string region = env("AWS_REGION");
    if (region.empty()) region = env("AWS_DEFAULT_REGION");
    if (region.empty()) region = "us-east-1";
    RPL_TRY(loc, parse_s3_url(url, region));
    const std::string where = "store URL '" + loc.masked_url + "': ";

    std::string access = options.access_key, secret = options.secret_key, token;
    if (access.empty() && secret.empty()) {
        access = env("AWS_ACCESS_KEY_ID");
        secret = env("AWS_SECRET_ACCESS_KEY");
        token = env("AWS_SESSION_TOKEN");
        if (access.empty() != secret.empty())
            return fail(errc::invalid_config,
                        where + (access.empty() ? "AWS_SECRET_ACCESS_KEY is set without "
                                                  "AWS_ACCESS_KEY_ID"
                                                : "AWS_ACCESS_KEY_ID is set without "
                                                  "AWS_SECRET_ACCESS_KEY"));
    } else if (access.empty() || secret.empty()) {
        return fail(
            errc::invalid_config,
            where + (access.empty() ? "a secret key is given without access key"
                                    : "access key '" + access + "' is given without a secret key"));
    }
    if (options.max_attempts < 1)
        return fail(errc::invalid_config, where + "max_attempts must be at least 1, not " +
                                              std::to_string(options.max_attempts));
    if (options.part_size < min_part_size || options.part_size > max_part_size)
        return fail(errc::invalid_config, where + "part_size " + std::to_string(options.part_size) +
                                              " is outside S3's limits (5 MiB to 5 GiB)");
    if (options.request_timeout.count() <= 0)
        return fail(errc::invalid_config, where + "request_timeout must be positive");
    if (options.operation_timeout.count() <= 0)
        return fail(errc::invalid_config, where + "operation_timeout must be positive");
    global_init();
    return std::unique_ptr<object_store>(std::make_unique<s3_store>(
        std::move(loc), options, std::move(access), std::move(secret), std::move(token)));
}

}  // namespace rpl::backup

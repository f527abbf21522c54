// Durations and sizes as they are written in flows.toml.
//
// Both are strict on purpose: "5 s", "1.5s" or "64M" are rejected rather than
// guessed at, because a silently misread interval or buffer size shows up
// weeks later as lag or memory pressure, far from the line that caused it.

#include "conf/config.h"

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace rpl::conf {

namespace {

constexpr std::int64_t max_i64 = std::numeric_limits<std::int64_t>::max();

// Digits at s[i..]; false on no digits or overflow. Advances i.
bool read_number(std::string_view s, std::size_t& i, std::uint64_t& out) {
    const std::size_t start = i;
    std::uint64_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        const auto digit = static_cast<std::uint64_t>(s[i] - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
        v = v * 10 + digit;
        ++i;
    }
    out = v;
    return i > start;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

Error bad_duration(std::string_view s) {
    return Error{errc::invalid_config,
                 "invalid duration " + quoted(s) +
                     ": expected a number and a unit (ms, s, m, h, d), e.g. \"500ms\", \"5s\", "
                     "\"2m\", \"1h30m\""};
}

Error bad_size(std::string_view s) {
    return Error{errc::invalid_config,
                 "invalid size " + quoted(s) +
                     ": expected bytes, or a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, "
                     "TiB), e.g. \"64MiB\""};
}

}  // namespace

Result<duration> parse_duration(std::string_view s) {
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && s[i] == '-') {
        // Accepted here so that the caller can say "must be greater than zero"
        // instead of the less helpful "invalid duration".
        negative = true;
        ++i;
    }
    if (i == s.size()) return bad_duration(s);

    // Longest unit first so that "ms" is not read as "m" followed by junk.
    static constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> units = {{
        {"ms", 1},
        {"s", 1000},
        {"m", 60 * 1000},
        {"h", 60 * 60 * 1000},
        {"d", 24 * 60 * 60 * 1000},
    }};
    std::int64_t total = 0;
    while (i < s.size()) {
        std::uint64_t n = 0;
        if (!read_number(s, i, n)) return bad_duration(s);
        std::int64_t scale = 0;
        for (const auto& [name, ms] : units) {
            if (s.substr(i, name.size()) == name) {
                scale = ms;
                i += name.size();
                break;
            }
        }
        if (scale == 0) return bad_duration(s);
        if (n > static_cast<std::uint64_t>(max_i64 / scale)) return bad_duration(s);
        const auto part = static_cast<std::int64_t>(n) * scale;
        if (total > max_i64 - part) return bad_duration(s);
        total += part;
    }
    return duration{negative ? -total : total};
}

std::string format_duration(duration d) {
    std::int64_t ms = d.count();
    if (ms == 0) return "0s";
    std::string out;
    if (ms < 0) {
        out = "-";
        // -INT64_MIN overflows; a duration that long is only ever a bug.
        ms = ms == std::numeric_limits<std::int64_t>::min() ? max_i64 : -ms;
    }
    static constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> units = {{
        {"d", 24 * 60 * 60 * 1000},
        {"h", 60 * 60 * 1000},
        {"m", 60 * 1000},
        {"s", 1000},
        {"ms", 1},
    }};
    for (const auto& [name, scale] : units) {
        if (ms >= scale) {
            out += std::to_string(ms / scale);
            out += name;
            ms %= scale;
        }
    }
    return out;
}

Result<std::uint64_t> parse_size(std::string_view s) {
    std::size_t i = 0;
    std::uint64_t n = 0;
    if (!read_number(s, i, n)) return bad_size(s);
    const std::string_view unit = s.substr(i);
    static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 10> units = {{
        {"", 1},
        {"B", 1},
        {"KB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    }};
    for (const auto& [name, scale] : units) {
        if (unit == name) {
            if (n > std::numeric_limits<std::uint64_t>::max() / scale) return bad_size(s);
            return n * scale;
        }
    }
    return bad_size(s);
}

std::string format_size(std::uint64_t bytes) {
    if (bytes == 0) return "0";
    // Binary units first: buffer sizes are almost always written as MiB.
    static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> units = {{
        {"TiB", 1ull << 40},
        {"GiB", 1ull << 30},
        {"MiB", 1ull << 20},
        {"KiB", 1ull << 10},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"MB", 1000ull * 1000},
        {"KB", 1000ull},
    }};
    for (const auto& [name, scale] : units) {
        if (bytes % scale == 0) return std::to_string(bytes / scale) + std::string(name);
    }
    return std::to_string(bytes);
}

const char* to_string(naming_policy p) noexcept {
    switch (p) {
        case naming_policy::prefix: return "prefix";
        case naming_policy::identity: return "identity";
    }
    return "prefix";
}

std::vector<std::regex> compile_patterns(const std::vector<std::string>& patterns) {
    std::vector<std::regex> out;
    out.reserve(patterns.size());
    for (const auto& p : patterns)
        out.emplace_back(p, std::regex::ECMAScript | std::regex::optimize);
    return out;
}

bool full_match_any(const std::vector<std::regex>& res, const std::string& s) {
    for (const auto& re : res) {
        if (std::regex_match(s, re)) return true;
    }
    return false;
}

}  // namespace rpl::conf

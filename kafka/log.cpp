#include "kafka/log.h"

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace rpl {

namespace {
std::atomic<int> g_level{static_cast<int>(level::info)};
std::atomic<bool> g_json{false};

const char* level_name(level l) noexcept {
    switch (l) {
        case level::trace: return "TRACE";
        case level::debug: return "DEBUG";
        case level::info: return "INFO";
        case level::warn: return "WARN";
        case level::error: return "ERROR";
        case level::off: return "OFF";
    }
    return "?";
}
}  // namespace

namespace {
const char* g_program = "replicatord";

void write_all(const char* s) noexcept {
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, s, std::strlen(s));
}

// Async-signal-safe but for backtrace(), whose first call may allocate:
// report_fatal_signals calls it once beforehand.
void on_fatal_signal(int sig) {
    const char* name = sig == SIGSEGV  ? "SIGSEGV"
                       : sig == SIGBUS ? "SIGBUS"
                       : sig == SIGILL ? "SIGILL"
                       : sig == SIGFPE ? "SIGFPE"
                                       : "SIGABRT";
    write_all("FATAL ");
    write_all(g_program);
    write_all(": ");
    write_all(name);
    write_all("; backtrace:\n");
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
    // SA_RESETHAND restored the default action: die of the same signal.
    ::raise(sig);
}
}  // namespace

void report_fatal_signals(const char* program) noexcept {
    g_program = program;
    void* warm[1];
    (void)::backtrace(warm, 1);
    struct sigaction sa {};
    sa.sa_handler = &on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::sigaction(sig, &sa, nullptr);
}

void set_log_level(level l) noexcept { g_level.store(static_cast<int>(l)); }
void set_log_json(bool json) noexcept { g_json.store(json); }

std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (ch) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}
level log_level() noexcept { return static_cast<level>(g_level.load(std::memory_order_relaxed)); }

bool parse_level(std::string_view s, level& out) noexcept {
    static constexpr std::pair<std::string_view, level> names[] = {
        {"trace", level::trace}, {"debug", level::debug}, {"info", level::info},
        {"warn", level::warn},   {"error", level::error}, {"off", level::off}};
    for (const auto& [name, l] : names) {
        if (s == name) {
            out = l;
            return true;
        }
    }
    return false;
}

Logger Logger::child(std::string_view more) const {
    if (prefix_.empty()) return Logger(std::string(more));
    return Logger(prefix_ + " " + std::string(more));
}

void Logger::log(level l, std::string_view msg) const noexcept {
    if (!enabled(l)) return;
    try {
        using namespace std::chrono;
        const auto now = system_clock::now();
        const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
        const std::time_t t = system_clock::to_time_t(now);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char ts[64];
        std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms));
        std::string line;
        line.reserve(64 + prefix_.size() + msg.size());
        if (g_json.load(std::memory_order_relaxed)) {
            std::string lvl = level_name(l);
            for (auto& ch : lvl) ch = static_cast<char>(ch - 'A' + 'a');
            line += "{\"ts\":\"";
            line += ts;
            line += "\",\"level\":\"" + lvl + "\",\"component\":" + quoted(prefix_) +
                    ",\"msg\":" + quoted(msg) + "}\n";
            [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
            return;
        }
        line += ts;
        line += ' ';
        line += level_name(l);
        line += ' ';
        if (!prefix_.empty()) {
            line += '[';
            line += prefix_;
            line += "] ";
        }
        line += msg;
        line += '\n';
        // One write(2) per line keeps lines whole across threads.
        [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
    } catch (...) {
        // Logging must never throw into the caller.
    }
}

}  // namespace rpl

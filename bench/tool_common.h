// What bench's standalone Kafka tools (bench_mirror_tool, bench_soak_tool)
// share. They link no replicatord code, so that what they measure or check
// is seen from outside.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace rpl::bench {

// `<tool>: <what>` on stderr, exit code 1.
[[noreturn]] inline void die(const char* tool, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", tool, what.c_str());
    std::exit(1);
}

// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
inline int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace rpl::bench

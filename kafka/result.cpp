#include "kafka/result.h"

namespace rpl {

const char* to_string(errc c) noexcept {
    switch (c) {
        case errc::invalid_config: return "invalid_config";
        case errc::unreachable: return "unreachable";
        case errc::kafka: return "kafka";
        case errc::not_found: return "not_found";
        case errc::conflict: return "conflict";
        case errc::io: return "io";
        case errc::corrupt: return "corrupt";
        case errc::timeout: return "timeout";
        case errc::cancelled: return "cancelled";
        case errc::internal: return "internal";
    }
    return "unknown";
}

}  // namespace rpl

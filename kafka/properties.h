// Validation of librdkafka client properties, for conf/.
//
// conf/ passes [clusters.NAME.client] tables through to librdkafka; before it
// accepts one it asks librdkafka itself whether the name and value are valid.
#pragma once

#include "kafka/result.h"

#include <string>
#include <string_view>

namespace rpl::kafka {

// Ok if rd_kafka_conf_set accepts name=value on a fresh conf object (or on a
// fresh topic conf, for topic-level properties). On failure the message is
// librdkafka's own explanation, e.g. "No such configuration property: ...".
[[nodiscard]] Result<void> check_property(std::string_view name, std::string_view value);

}  // namespace rpl::kafka

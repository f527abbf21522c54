#include "kafka/properties.h"

#include <librdkafka/rdkafka.h>

#include <memory>

namespace rpl::kafka {

Result<void> check_property(std::string_view name, std::string_view value) {
    std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(),
                                                                            &rd_kafka_conf_destroy);
    char err[512] = {0};
    const std::string n(name);
    const std::string v(value);
    // Global properties also accept "default topic config" names.
    if (rd_kafka_conf_set(conf.get(), n.c_str(), v.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK)
        return ok();
    return fail(errc::invalid_config, err);
}

}  // namespace rpl::kafka

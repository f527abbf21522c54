// Admin operations with deadlines: topics, configs, partitions, groups.
// Each call sends one admin request through the given client's handle and
// waits for its result on a private queue, at most `deadline`.
#pragma once

#include "kafka/client.h"
#include "kafka/consumer.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rpl::kafka {

struct config_entry {
    std::string name;
    std::string value;
    bool is_default = false;
    bool is_sensitive = false;
    bool is_read_only = false;
    rd_kafka_ConfigSource_t source = RD_KAFKA_CONFIG_SOURCE_UNKNOWN_CONFIG;
};

struct group_listing {
    std::string group_id;
    std::string state;  // Stable, Empty, PreparingRebalance, Dead...
    bool is_simple = false;
};

struct group_description {
    std::string group_id;
    std::string state;
    size_t members = 0;
};

class admin {
public:
    explicit admin(const Client& c, deadline_ms deadline = std::chrono::seconds(30))
        : c_(&c), deadline_(deadline) {}

    // errc::conflict if the topic exists already.
    [[nodiscard]] Result<void> create_topic(
        const std::string& name, int partitions, int replication_factor,
        const std::map<std::string, std::string>& configs) const;
    [[nodiscard]] Result<void> delete_topic(const std::string& name) const;
    [[nodiscard]] Result<void> create_partitions(const std::string& name, int total) const;
    [[nodiscard]] Result<std::vector<config_entry>> describe_topic_configs(
        const std::string& name) const;
    // Replaces the topic's whole set of dynamic configs (AlterConfigs is not
    // incremental in librdkafka 2.0.2): pass every key that should stay set.
    [[nodiscard]] Result<void> alter_topic_configs(
        const std::string& name, const std::map<std::string, std::string>& configs) const;

    [[nodiscard]] Result<std::vector<group_listing>> list_groups() const;
    [[nodiscard]] Result<group_description> describe_group(const std::string& group) const;
    [[nodiscard]] Result<partition_list> list_group_offsets(const std::string& group) const;
    [[nodiscard]] Result<void> alter_group_offsets(const std::string& group,
                                                   const partition_list& offsets) const;
    // Deletes a group that has no members (its committed offsets go with
    // it). errc::not_found if there is no such group; errc::conflict if it
    // still has members.
    [[nodiscard]] Result<void> delete_group(const std::string& group) const;

private:
    const Client* c_;
    deadline_ms deadline_;
};

// Another group's commits and members, for the daemon's loops that ask
// again and again through outages (the checkpointer, the tap). Not the
// admin API above: in librdkafka before 2.15 its requests to a group's
// coordinator can abort the whole process ("rd_kafka_enq_once_del_source_
// return: Assertion `eonce->refcnt > 0' failed", librdkafka issues 4605 and
// 3663) or hang it when a broker goes down and comes back around them;
// bench/soak saw the abort after a broker outage. Commits are read and
// written through a consumer handle of the group that never subscribes (so
// never joins), as the group's own members do; members are counted by
// ListGroups and DescribeGroups on every broker. A commit given up at the
// deadline may still land once the coordinator is back. Not thread-safe.
class group_client {
public:
    group_client(endpoint ep, Logger log, deadline_ms deadline);

    // A group with no commits and no members is "Dead" with 0 members.
    [[nodiscard]] Result<group_description> describe(const std::string& group);
    // The group's commits on `parts`; those it has none for are left out.
    [[nodiscard]] Result<partition_list> committed(const std::string& group,
                                                   const partition_list& parts);
    // Commits `offsets` for a group with no active member (the broker
    // refuses it otherwise).
    [[nodiscard]] Result<void> commit(const std::string& group, const partition_list& offsets);

private:
    Result<Client*> handle_of(const std::string& group);

    struct cached {
        Client client;
        uint64_t used = 0;
    };
    static constexpr size_t max_handles = 32;  // least recently used go first
    endpoint ep_;
    Logger log_;
    deadline_ms deadline_;
    std::optional<Client> plain_;  // ListGroups and DescribeGroups
    std::map<std::string, cached> handles_;
    uint64_t uses_ = 0;
};

}  // namespace rpl::kafka

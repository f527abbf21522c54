#include "kafka/admin.h"

#include <algorithm>

namespace rpl::kafka {

namespace {

struct options_deleter {
    void operator()(rd_kafka_AdminOptions_t* p) const noexcept { rd_kafka_AdminOptions_destroy(p); }
};
using options_ptr = std::unique_ptr<rd_kafka_AdminOptions_t, options_deleter>;

options_ptr make_options(const Client& c, rd_kafka_admin_op_t op, deadline_ms deadline) {
    options_ptr o(rd_kafka_AdminOptions_new(c.get(), op));
    char err[256];
    rd_kafka_AdminOptions_set_request_timeout(o.get(), static_cast<int>(deadline.count()), err,
                                              sizeof err);
    rd_kafka_AdminOptions_set_operation_timeout(o.get(), static_cast<int>(deadline.count()), err,
                                                sizeof err);
    return o;
}

// Waits for the result event of the request just sent on q.
Result<event_ptr> wait_result(const Client& c, rd_kafka_queue_t* q, deadline_ms deadline,
                              const std::string& what) {
    // A little slack over the request timeout so librdkafka reports its own
    // timeout error rather than us guessing.
    event_ptr ev(rd_kafka_queue_poll(q, static_cast<int>(deadline.count()) + 2000));
    if (!ev)
        return fail(errc::timeout, what + " on " + c.where().describe() + ": no answer within " +
                                       std::to_string(deadline.count()) + " ms");
    if (const auto err = rd_kafka_event_error(ev.get())) {
        Error e = kafka_error(err, what + " on " + c.where().describe());
        if (const char* s = rd_kafka_event_error_string(ev.get()))
            e.message += std::string(" (") + s + ")";
        return boost::outcome_v2::failure(std::move(e));
    }
    return ev;
}

Result<void> topic_results(const rd_kafka_topic_result_t* const* res, size_t n,
                           const std::string& what) {
    for (size_t i = 0; i < n; ++i) {
        const auto err = rd_kafka_topic_result_error(res[i]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        const char* s = rd_kafka_topic_result_error_string(res[i]);
        Error e = kafka_error(err, what + " " + rd_kafka_topic_result_name(res[i]));
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) e.code = errc::conflict;
        if (s != nullptr) e.message += std::string(" (") + s + ")";
        return boost::outcome_v2::failure(std::move(e));
    }
    return ok();
}

}  // namespace

Result<void> admin::create_topic(const std::string& name, int partitions, int replication_factor,
                                 const std::map<std::string, std::string>& configs) const {
    char err[512];
    std::unique_ptr<rd_kafka_NewTopic_t, decltype(&rd_kafka_NewTopic_destroy)> nt(
        rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, err, sizeof err),
        &rd_kafka_NewTopic_destroy);
    if (!nt) return fail(errc::invalid_config, "create topic " + name + ": " + err);
    for (const auto& [k, v] : configs) {
        if (const auto e = rd_kafka_NewTopic_set_config(nt.get(), k.c_str(), v.c_str()))
            return kafka_error(e, "create topic " + name + ": config " += k);
    }
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_CREATETOPICS, deadline_);
    rd_kafka_NewTopic_t* arr[] = {nt.get()};
    rd_kafka_CreateTopics(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "create topic " + name));
    size_t n = 0;
    const auto* res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
    return topic_results(res, n, "create topic");
}

Result<void> admin::delete_topic(const std::string& name) const {
    std::unique_ptr<rd_kafka_DeleteTopic_t, decltype(&rd_kafka_DeleteTopic_destroy)> dt(
        rd_kafka_DeleteTopic_new(name.c_str()), &rd_kafka_DeleteTopic_destroy);
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_DELETETOPICS, deadline_);
    rd_kafka_DeleteTopic_t* arr[] = {dt.get()};
    rd_kafka_DeleteTopics(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "delete topic " + name));
    size_t n = 0;
    const auto* res =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev.get()), &n);
    return topic_results(res, n, "delete topic");
}

Result<void> admin::create_partitions(const std::string& name, int total) const {
    char err[512];
    std::unique_ptr<rd_kafka_NewPartitions_t, decltype(&rd_kafka_NewPartitions_destroy)> np(
        rd_kafka_NewPartitions_new(name.c_str(), static_cast<size_t>(total), err, sizeof err),
        &rd_kafka_NewPartitions_destroy);
    if (!np) return fail(errc::invalid_config, "add partitions to " + name + ": " + err);
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, deadline_);
    rd_kafka_NewPartitions_t* arr[] = {np.get()};
    rd_kafka_CreatePartitions(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "add partitions to " + name));
    size_t n = 0;
    const auto* res = rd_kafka_CreatePartitions_result_topics(
        rd_kafka_event_CreatePartitions_result(ev.get()), &n);
    return topic_results(res, n, "add partitions to");
}

namespace {
struct config_resource_deleter {
    void operator()(rd_kafka_ConfigResource_t* p) const noexcept {
        rd_kafka_ConfigResource_destroy(p);
    }
};
using config_resource_ptr = std::unique_ptr<rd_kafka_ConfigResource_t, config_resource_deleter>;
}  // namespace

Result<std::vector<config_entry>> admin::describe_topic_configs(const std::string& name) const {
    config_resource_ptr res(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str()));
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, deadline_);
    rd_kafka_ConfigResource_t* arr[] = {res.get()};
    rd_kafka_DescribeConfigs(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "describe configs of " + name));
    size_t n = 0;
    const auto* rs = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
    std::vector<config_entry> out;
    for (size_t i = 0; i < n; ++i) {
        if (const auto err = rd_kafka_ConfigResource_error(rs[i]))
            return kafka_error(err, "describe configs of " + name);
        size_t cnt = 0;
        const auto* entries = rd_kafka_ConfigResource_configs(rs[i], &cnt);
        for (size_t j = 0; j < cnt; ++j) {
            config_entry e;
            e.name = rd_kafka_ConfigEntry_name(entries[j]);
            const char* v = rd_kafka_ConfigEntry_value(entries[j]);
            e.value = v != nullptr ? v : "";
            e.is_default = rd_kafka_ConfigEntry_is_default(entries[j]) != 0;
            e.is_sensitive = rd_kafka_ConfigEntry_is_sensitive(entries[j]) != 0;
            e.is_read_only = rd_kafka_ConfigEntry_is_read_only(entries[j]) != 0;
            e.source = rd_kafka_ConfigEntry_source(entries[j]);
            out.push_back(std::move(e));
        }
    }
    return out;
}

Result<void> admin::alter_topic_configs(const std::string& name,
                                        const std::map<std::string, std::string>& configs) const {
    config_resource_ptr res(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str()));
    for (const auto& [k, v] : configs) {
        if (const auto e = rd_kafka_ConfigResource_set_config(res.get(), k.c_str(), v.c_str()))
            return kafka_error(e, "alter configs of " + name + ": " += k);
    }
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, deadline_);
    rd_kafka_ConfigResource_t* arr[] = {res.get()};
    rd_kafka_AlterConfigs(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "alter configs of " + name));
    size_t n = 0;
    const auto* rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
        if (const auto err = rd_kafka_ConfigResource_error(rs[i])) {
            Error e = kafka_error(err, "alter configs of " + name);
            if (const char* s = rd_kafka_ConfigResource_error_string(rs[i]))
                e.message += std::string(" (") + s + ")";
            return boost::outcome_v2::failure(std::move(e));
        }
    }
    return ok();
}

Result<std::vector<group_listing>> admin::list_groups() const {
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, deadline_);
    rd_kafka_ListConsumerGroups(c_->get(), opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "list consumer groups"));
    const auto* r = rd_kafka_event_ListConsumerGroups_result(ev.get());
    size_t n = 0;
    const auto* groups = rd_kafka_ListConsumerGroups_result_valid(r, &n);
    std::vector<group_listing> out;
    for (size_t i = 0; i < n; ++i) {
        group_listing g;
        g.group_id = rd_kafka_ConsumerGroupListing_group_id(groups[i]);
        g.state =
            rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(groups[i]));
        g.is_simple = rd_kafka_ConsumerGroupListing_is_simple_consumer_group(groups[i]) != 0;
        out.push_back(std::move(g));
    }
    size_t nerr = 0;
    const auto* errs = rd_kafka_ListConsumerGroups_result_errors(r, &nerr);
    if (n == 0 && nerr > 0) {
        return fail(errc::kafka, std::string("list consumer groups on ") + c_->where().describe() +
                                     ": " + rd_kafka_error_string(errs[0]));
    }
    return out;
}

Result<group_description> admin::describe_group(const std::string& group) const {
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, deadline_);
    const char* groups[] = {group.c_str()};
    rd_kafka_DescribeConsumerGroups(c_->get(), groups, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "describe group " + group));
    size_t n = 0;
    const auto* rs = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &n);
    if (n == 0) return fail(errc::not_found, "describe group " + group + ": no result");
    if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(rs[0]))
        return fail(errc::kafka, "describe group " + group + ": " + rd_kafka_error_string(e));
    group_description d;
    d.group_id = group;
    d.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(rs[0]));
    d.members = rd_kafka_ConsumerGroupDescription_member_count(rs[0]);
    return d;
}

Result<partition_list> admin::list_group_offsets(const std::string& group) const {
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, deadline_);
    std::unique_ptr<rd_kafka_ListConsumerGroupOffsets_t,
                    decltype(&rd_kafka_ListConsumerGroupOffsets_destroy)>
        req(rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), nullptr),
            &rd_kafka_ListConsumerGroupOffsets_destroy);
    rd_kafka_ListConsumerGroupOffsets_t* arr[] = {req.get()};
    rd_kafka_ListConsumerGroupOffsets(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "list offsets of group " + group));
    size_t n = 0;
    const auto* rs = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &n);
    partition_list out;
    for (size_t i = 0; i < n; ++i) {
        if (const rd_kafka_error_t* e = rd_kafka_group_result_error(rs[i]))
            return fail(errc::kafka,
                        "list offsets of group " + group + ": " + rd_kafka_error_string(e));
        for (auto& p : from_tpl(rd_kafka_group_result_partitions(rs[i])))
            if (p.offset >= 0) out.push_back(std::move(p));
    }
    return out;
}

Result<void> admin::alter_group_offsets(const std::string& group,
                                        const partition_list& offsets) const {
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, deadline_);
    tpl_ptr tpl = to_tpl(offsets);
    std::unique_ptr<rd_kafka_AlterConsumerGroupOffsets_t,
                    decltype(&rd_kafka_AlterConsumerGroupOffsets_destroy)>
        req(rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), tpl.get()),
            &rd_kafka_AlterConsumerGroupOffsets_destroy);
    rd_kafka_AlterConsumerGroupOffsets_t* arr[] = {req.get()};
    rd_kafka_AlterConsumerGroupOffsets(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "commit offsets of group " + group));
    size_t n = 0;
    const auto* rs = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
        if (const rd_kafka_error_t* e = rd_kafka_group_result_error(rs[i]))
            return fail(errc::kafka,
                        "commit offsets of group " + group + ": " + rd_kafka_error_string(e));
        const auto* parts = rd_kafka_group_result_partitions(rs[i]);
        for (int j = 0; parts != nullptr && j < parts->cnt; ++j) {
            if (parts->elems[j].err)
                return kafka_error(parts->elems[j].err,
                                   "commit offsets of group " + group + " " +
                                       parts->elems[j].topic + "/" +
                                       std::to_string(parts->elems[j].partition));
        }
    }
    return ok();
}

Result<void> admin::delete_group(const std::string& group) const {
    queue_ptr q(rd_kafka_queue_new(c_->get()));
    auto opts = make_options(*c_, RD_KAFKA_ADMIN_OP_DELETEGROUPS, deadline_);
    std::unique_ptr<rd_kafka_DeleteGroup_t, decltype(&rd_kafka_DeleteGroup_destroy)> req(
        rd_kafka_DeleteGroup_new(group.c_str()), &rd_kafka_DeleteGroup_destroy);
    rd_kafka_DeleteGroup_t* arr[] = {req.get()};
    rd_kafka_DeleteGroups(c_->get(), arr, 1, opts.get(), q.get());
    RPL_TRY(ev, wait_result(*c_, q.get(), deadline_, "delete group " + group));
    size_t n = 0;
    const auto* rs =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
        const rd_kafka_error_t* e = rd_kafka_group_result_error(rs[i]);
        if (e == nullptr) continue;
        Error err = kafka_error(rd_kafka_error_code(e),
                                "delete group " + group + " on " + c_->where().describe());
        if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
            err.code = errc::not_found;
        else if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP)
            err.code = errc::conflict;
        return boost::outcome_v2::failure(std::move(err));
    }
    return ok();
}

group_client::group_client(endpoint ep, Logger log, deadline_ms deadline)
    : ep_(std::move(ep)), log_(std::move(log)), deadline_(deadline) {}

Result<Client*> group_client::handle_of(const std::string& group) {
    ++uses_;
    if (auto it = handles_.find(group); it != handles_.end()) {
        it->second.used = uses_;
        return &it->second.client;
    }
    if (handles_.size() >= max_handles) {
        auto oldest = std::min_element(
            handles_.begin(), handles_.end(),
            [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
        handles_.erase(oldest);
    }
    RPL_TRY(c, Client::create(client_kind::consumer, ep_,
                              {{"group.id", group},
                               {"enable.auto.commit", "false"},
                               {"enable.auto.offset.store", "false"}},
                              log_));
    auto [it, inserted] = handles_.emplace(group, cached{std::move(c), uses_});
    return &it->second.client;
}

Result<group_description> group_client::describe(const std::string& group) {
    if (!plain_) {
        RPL_TRY(c, Client::create(client_kind::producer, ep_, {}, log_));
        plain_.emplace(std::move(c));
    }
    const rd_kafka_group_list* list = nullptr;
    const auto err = rd_kafka_list_groups(plain_->get(), group.c_str(), &list,
                                          static_cast<int>(deadline_.count()));
    const std::unique_ptr<const rd_kafka_group_list, void (*)(const rd_kafka_group_list*)> owned(
        list, [](const rd_kafka_group_list* l) {
            if (l != nullptr) rd_kafka_group_list_destroy(l);
        });
    const std::string what = "describe group " + group + " on " + ep_.describe();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__PARTIAL)
        return kafka_error(err, what);
    for (int i = 0; list != nullptr && i < list->group_cnt; ++i) {
        const auto& g = list->groups[i];
        if (group != g.group) continue;
        if (g.err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(g.err, what);
        return group_description{group, g.state != nullptr ? g.state : "",
                                 static_cast<size_t>(std::max(0, g.member_cnt))};
    }
    // Not listed by any broker: no such group, unless a broker did not answer.
    if (err == RD_KAFKA_RESP_ERR__PARTIAL)
        return fail(errc::unreachable, what + ": not every broker answered");
    return group_description{group, "Dead", 0};
}

Result<partition_list> group_client::committed(const std::string& group,
                                               const partition_list& parts) {
    if (parts.empty()) return partition_list{};
    RPL_TRY(c, handle_of(group));
    partition_list bare = parts;
    for (auto& p : bare) p.offset = RD_KAFKA_OFFSET_INVALID;
    tpl_ptr tpl = to_tpl(bare);
    if (const auto err =
            rd_kafka_committed(c->get(), tpl.get(), static_cast<int>(deadline_.count())))
        return kafka_error(err, "offsets of group " + group + " on " + ep_.describe());
    partition_list out;
    for (auto& p : from_tpl(tpl.get())) {
        if (p.offset >= 0) out.push_back(std::move(p));
    }
    return out;
}

Result<void> group_client::commit(const std::string& group, const partition_list& offsets) {
    if (offsets.empty()) return ok();
    RPL_TRY(c, handle_of(group));
    const std::string what = "commit offsets of group " + group + " on " + ep_.describe();
    tpl_ptr tpl = to_tpl(offsets);
    queue_ptr q(rd_kafka_queue_new(c->get()));
    if (const auto err = rd_kafka_commit_queue(c->get(), tpl.get(), q.get(), nullptr, nullptr))
        return kafka_error(err, what);
    event_ptr ev(rd_kafka_queue_poll(q.get(), static_cast<int>(deadline_.count())));
    if (!ev)
        return fail(errc::timeout,
                    what + ": no answer within " + std::to_string(deadline_.count()) + " ms");
    if (const auto err = rd_kafka_event_error(ev.get())) return kafka_error(err, what);
    if (const auto* parts = rd_kafka_event_topic_partition_list(ev.get())) {
        for (int i = 0; i < parts->cnt; ++i) {
            if (parts->elems[i].err)
                return kafka_error(parts->elems[i].err,
                                   what + " " + parts->elems[i].topic + "/" +
                                       std::to_string(parts->elems[i].partition));
        }
    }
    return ok();
}

}  // namespace rpl::kafka

// MirrorMaker 2's own client code reading what replicatord writes on the
// target cluster. Used by tests/integration/mm2_interop_test.cpp, compiled at
// test time against the test bed's Kafka jars (connect-mirror-client):
//
//   javac -cp "$KAFKA_LIBS/*" -d DIR TranslateOffsets.java
//   java -cp "DIR:$KAFKA_LIBS/*" TranslateOffsets TARGET_BOOTSTRAP SOURCE_ALIAS GROUP
//       RemoteClusterUtils.translateOffsets: one line per partition,
//       "topic<TAB>partition<TAB>offset", sorted
//   java ... TranslateOffsets --checkpoints TARGET_BOOTSTRAP SOURCE_ALIAS GROUP
//       the group's latest checkpoint per partition as MirrorMaker 2's
//       Checkpoint.deserializeRecord reads it from partition 0 of
//       DefaultReplicationPolicy's checkpoints topic (as MirrorClient does):
//       "topic<TAB>partition<TAB>upstream<TAB>downstream<TAB>metadata", sorted
//   java ... TranslateOffsets --clusters TARGET_BOOTSTRAP SOURCE_ALIAS
//       what MirrorClient infers from the target's topics, one fact a line:
//       "upstream<TAB>alias", "heartbeat-topic<TAB>name",
//       "checkpoint-topic<TAB>name", "hops<TAB>SOURCE_ALIAS<TAB>n", and the
//       newest heartbeat in <SOURCE_ALIAS>.heartbeats decoded by
//       Heartbeat.deserializeRecord: "heartbeat<TAB>source<TAB>target<TAB>timestamp_ms"
//
// Exit code 0 on success, 2 on bad usage, 1 on any failure (message on stderr).
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.mirror.Checkpoint;
import org.apache.kafka.connect.mirror.DefaultReplicationPolicy;
import org.apache.kafka.connect.mirror.Heartbeat;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public final class TranslateOffsets {
    private static final Duration TIMEOUT = Duration.ofSeconds(20);

    public static void main(String[] args) throws Exception {
        try {
            if (args.length == 3 && !args[0].startsWith("--")) {
                translate(args[0], args[1], args[2]);
            } else if (args.length == 4 && args[0].equals("--checkpoints")) {
                checkpoints(args[1], args[2], args[3]);
            } else if (args.length == 3 && args[0].equals("--clusters")) {
                clusters(args[1], args[2]);
            } else {
                System.err.println("usage: TranslateOffsets TARGET_BOOTSTRAP SOURCE_ALIAS GROUP\n"
                        + "       TranslateOffsets --checkpoints TARGET_BOOTSTRAP SOURCE_ALIAS GROUP\n"
                        + "       TranslateOffsets --clusters TARGET_BOOTSTRAP SOURCE_ALIAS");
                System.exit(2);
            }
        } catch (Exception e) {
            System.err.println("TranslateOffsets: " + e);
            e.printStackTrace(System.err);
            System.exit(1);
        }
        System.out.flush();
        System.exit(0);
    }

    private static Map<String, Object> client(String bootstrap) {
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", bootstrap);
        return props;
    }

    private static String key(String topic, int partition) {
        // Sorts by topic, then numerically by partition.
        return topic + "\t" + String.format("%010d", partition);
    }

    private static void translate(String bootstrap, String alias, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets =
                RemoteClusterUtils.translateOffsets(client(bootstrap), alias, group, TIMEOUT);
        TreeMap<String, String> lines = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            TopicPartition tp = e.getKey();
            lines.put(key(tp.topic(), tp.partition()),
                    tp.topic() + "\t" + tp.partition() + "\t" + e.getValue().offset());
        }
        for (String line : lines.values()) System.out.println(line);
    }

    private static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Map<String, Object> props = client(bootstrap);
        props.put("enable.auto.commit", "false");
        return new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    // Every record of the given partitions, from the beginning to the end
    // offsets as of the start.
    private static List<ConsumerRecord<byte[], byte[]>> readAll(
            KafkaConsumer<byte[], byte[]> c, List<TopicPartition> tps) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        c.assign(tps);
        c.seekToBeginning(tps);
        Map<TopicPartition, Long> end = c.endOffsets(tps, TIMEOUT);
        long deadline = System.currentTimeMillis() + TIMEOUT.toMillis();
        while (true) {
            boolean done = true;
            for (TopicPartition tp : tps) {
                if (c.position(tp, TIMEOUT) < end.get(tp)) done = false;
            }
            if (done) return out;
            if (System.currentTimeMillis() > deadline)
                throw new RuntimeException("reading " + tps + " did not reach " + end + " in " + TIMEOUT);
            ConsumerRecords<byte[], byte[]> records = c.poll(Duration.ofMillis(500));
            for (ConsumerRecord<byte[], byte[]> r : records) out.add(r);
        }
    }

    private static void checkpoints(String bootstrap, String alias, String group) {
        String topic = new DefaultReplicationPolicy().checkpointsTopic(alias);
        TreeMap<String, String> latest = new TreeMap<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            for (ConsumerRecord<byte[], byte[]> r : readAll(c, List.of(new TopicPartition(topic, 0)))) {
                Checkpoint cp = Checkpoint.deserializeRecord(r);
                if (!cp.consumerGroupId().equals(group)) continue;
                TopicPartition tp = cp.topicPartition();
                latest.put(key(tp.topic(), tp.partition()), tp.topic() + "\t" + tp.partition() + "\t"
                        + cp.upstreamOffset() + "\t" + cp.downstreamOffset() + "\t" + cp.metadata());
            }
        }
        for (String line : latest.values()) System.out.println(line);
    }

    private static void clusters(String bootstrap, String alias) throws Exception {
        Map<String, Object> props = client(bootstrap);
        for (String u : new TreeSet<>(RemoteClusterUtils.upstreamClusters(props)))
            System.out.println("upstream\t" + u);
        for (String t : new TreeSet<>(RemoteClusterUtils.heartbeatTopics(props)))
            System.out.println("heartbeat-topic\t" + t);
        for (String t : new TreeSet<>(RemoteClusterUtils.checkpointTopics(props)))
            System.out.println("checkpoint-topic\t" + t);
        System.out.println("hops\t" + alias + "\t" + RemoteClusterUtils.replicationHops(props, alias));

        String topic = new DefaultReplicationPolicy().formatRemoteTopic(alias, "heartbeats");
        Heartbeat newest = null;
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            List<PartitionInfo> parts = c.partitionsFor(topic, TIMEOUT);
            List<TopicPartition> tps = new ArrayList<>();
            if (parts != null) {
                for (PartitionInfo p : parts) tps.add(new TopicPartition(topic, p.partition()));
            }
            if (!tps.isEmpty()) {
                for (ConsumerRecord<byte[], byte[]> r : readAll(c, tps)) {
                    Heartbeat h = Heartbeat.deserializeRecord(r);
                    if (newest == null || h.timestamp() > newest.timestamp()) newest = h;
                }
            }
        }
        if (newest != null)
            System.out.println("heartbeat\t" + newest.sourceClusterAlias() + "\t"
                    + newest.targetClusterAlias() + "\t" + newest.timestamp());
    }
}

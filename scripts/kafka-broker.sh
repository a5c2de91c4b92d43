#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker + controller in one JVM) on loopback, from the
# Apache Kafka jars on Maven Central. The tests start theirs through `run`; people use
# `start`/`stop` to get the broker of the original design at localhost:9093.
#
#   scripts/kafka-broker.sh fetch                 jars into .cache/kafka/<version>/libs (once)
#   scripts/kafka-broker.sh run   [options]       in the foreground (formats the data dir once)
#   scripts/kafka-broker.sh start [options]       in the background; waits until it answers
#   scripts/kafka-broker.sh stop  [--dir DIR]     stops a broker started with `start`
#   scripts/kafka-broker.sh tool CLASS [ARGS]     a Kafka tool on the same jars, e.g.
#       scripts/kafka-broker.sh tool org.apache.kafka.tools.ConsumerGroupCommand \
#           --bootstrap-server localhost:9093 --describe --group stockstream-bridge
#
# Options: --dir DIR (data, logs, pid; default .cache/kafka/data), --port PORT (clients,
# default 9093), --controller-port PORT (default: port + 1), --partitions N (default of new
# topics, 1). Needs Java 17+ and Maven (fetch only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
libs="$root/.cache/kafka/$kafka_version/libs"

die() { echo "kafka-broker: $*" >&2; exit 1; }

fetch() {
  [ -f "$libs/.complete" ] && return 0
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch the Kafka jars"
  echo "kafka-broker: fetching Apache Kafka $kafka_version jars with Maven" >&2
  rm -rf "$libs.partial"
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.partial" >&2
  rm -rf "$libs"
  mv "$libs.partial" "$libs"
  touch "$libs/.complete"
}

command=${1:-}
[ -n "$command" ] || die "usage: $0 fetch|run|start|stop|tool [options] (see the top of this file)"
shift

dir="$root/.cache/kafka/data"
port=9093
controller_port=
partitions=1
if [ "$command" != tool ]; then
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --controller-port) controller_port=$2; shift 2 ;;
      --partitions) partitions=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
fi
controller_port=${controller_port:-$((port + 1))}

java_cmd() {
  command -v java >/dev/null 2>&1 || die "Java 17 or later is needed (Debian: default-jre-headless)"
  echo java
}

write_config() {
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka-broker.sh: one node, broker and KRaft controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/logs
num.partitions=$partitions
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j2.properties" <<EOF
# Warnings and the start/stop lines only: a test broker's log is read when a test fails.
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
EOF
}

java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true)

run() {
  fetch
  local java
  java=$(java_cmd)
  write_config
  if [ ! -f "$dir/logs/meta.properties" ]; then
    local cluster_id
    cluster_id=$("$java" -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    "$java" "${java_opts[@]}" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "formatting $dir failed"; }
  fi
  # exec: the caller's process becomes the broker (signals, and a test's parent-death signal,
  # reach the JVM itself).
  exec "$java" "${java_opts[@]}" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties"
}

wait_for_port() {
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "no broker on 127.0.0.1:$port after 60 s (see $dir/broker.log)"
    kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null || { tail -20 "$dir/broker.log" >&2; die "the broker exited"; }
    sleep 0.5
  done
}

case "$command" in
  fetch) fetch ;;
  run) run ;;
  start)
    fetch
    mkdir -p "$dir"
    if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
      echo "kafka-broker: already running (pid $(cat "$dir/broker.pid")) on 127.0.0.1:$port"
      exit 0
    fi
    nohup "$0" run --dir "$dir" --port "$port" --controller-port "$controller_port" \
      --partitions "$partitions" >"$dir/broker.log" 2>&1 &
    echo $! >"$dir/broker.pid"
    wait_for_port
    echo "kafka-broker: Apache Kafka $kafka_version on 127.0.0.1:$port (data in $dir, log $dir/broker.log)"
    ;;
  stop)
    [ -f "$dir/broker.pid" ] || die "no broker.pid in $dir"
    pid=$(cat "$dir/broker.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$dir/broker.pid"
    echo "kafka-broker: stopped"
    ;;
  tool)
    fetch
    log_opts=()
    [ -f "$dir/log4j2.properties" ] && log_opts=(-Dlog4j2.configurationFile="$dir/log4j2.properties")
    exec "$(java_cmd)" "${log_opts[@]}" -cp "$libs/*" "$@"
    ;;
  *) die "unknown command $command" ;;
esac

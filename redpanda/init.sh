#!/bin/sh
# redpanda-init: one-shot setup of what commentflow needs in Redpanda, run by
# docker-compose.yml (service redpanda-init, same image as the broker, so rpk
# matches the broker version) after the broker reports healthy:
#
#   1. topic comments (3 partitions) and its dead-letter topic comments.dlq;
#   2. schemas/comment.avsc registered as subject comments-value;
#   3. BACKWARD compatibility on that subject, unless it has a level of its
#      own: an operator's FULL or FULL_TRANSITIVE is kept, never lowered.
#
# Idempotent: a second `docker compose up` on the same volume runs it again and
# it succeeds without changing anything. An existing topic is kept (and grown
# to the partition count if it has fewer partitions); registering the identical
# schema again returns the same ID. A schema change that breaks compatibility
# fails the init, and with it the start of producer and consumer.
#
# rpk reads the addresses from the environment (set in docker-compose.yml):
# RPK_BROKERS, RPK_ADMIN_HOSTS, RPK_REGISTRY_HOSTS.
# POSIX sh: the names below are checked against the constants of package
# github.com/commentflow/commentflow/schemas by devstack/stackfile.
set -eu

TOPIC=comments
DLQ_TOPIC=comments.dlq
SUBJECT=comments-value
PARTITIONS=3
DLQ_PARTITIONS=1
COMPATIBILITY=BACKWARD

# Overridable for a multi-broker cluster (REPLICAS=3) and for tests.
REPLICAS="${REPLICAS:-1}"
SCHEMA_FILE="${SCHEMA_FILE:-/etc/commentflow/comment.avsc}"
INIT_ATTEMPTS="${INIT_ATTEMPTS:-60}"
INIT_RETRY_DELAY="${INIT_RETRY_DELAY:-2}"

log() {
	printf 'redpanda-init: %s\n' "$*"
}

fail() {
	printf 'redpanda-init: error: %s\n' "$*" >&2
	exit 1
}

# wait_for DESCRIPTION COMMAND...: run COMMAND until it succeeds, at most
# INIT_ATTEMPTS times, INIT_RETRY_DELAY seconds apart.
wait_for() {
	what=$1
	shift
	attempt=1
	until "$@" >/dev/null 2>&1; do
		if [ "$attempt" -ge "$INIT_ATTEMPTS" ]; then
			fail "$what: not ready after $INIT_ATTEMPTS attempts"
		fi
		attempt=$((attempt + 1))
		sleep "$INIT_RETRY_DELAY"
	done
	log "$what: ready"
}

cluster_healthy() {
	rpk cluster health | grep -Eq 'Healthy:.+true'
}

# table_cell NAME KEY: from an rpk table on stdin (a header line, then one row
# per item), print column NAME of the row whose first field is KEY. Prints
# nothing if the header has no such column.
table_cell() {
	awk -v name="$1" -v key="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if (toupper($i) == name) col = i; next }
		col && $1 == key { print $col }'
}

# partition_count TOPIC: the partition count `rpk topic list` reports (NAME
# PARTITIONS REPLICAS table).
partition_count() {
	rpk topic list "$1" | table_cell PARTITIONS "$1"
}

# ensure_topic TOPIC PARTITIONS
ensure_topic() {
	name=$1
	want=$2
	if out=$(rpk topic create "$name" --partitions "$want" --replicas "$REPLICAS" 2>&1); then
		log "topic $name: created ($want partitions, $REPLICAS replicas)"
	else
		case $out in
		*TOPIC_ALREADY_EXISTS*)
			log "topic $name: already exists"
			;;
		*)
			printf '%s\n' "$out" >&2
			fail "topic $name: create failed"
			;;
		esac
	fi

	have=$(partition_count "$name")
	case $have in
	'' | *[!0-9]*)
		fail "topic $name: cannot read its partition count from rpk topic list (got '$have')"
		;;
	esac
	if [ "$have" -lt "$want" ]; then
		log "topic $name: has $have partitions, adding $((want - have))"
		rpk topic add-partitions "$name" --num "$((want - have))"
	elif [ "$have" -gt "$want" ]; then
		log "topic $name: has $have partitions (more than $want), left as it is"
	else
		log "topic $name: $have partitions"
	fi
}

register_schema() {
	[ -r "$SCHEMA_FILE" ] || fail "schema file $SCHEMA_FILE is not readable (is it mounted?)"
	# Registering a schema that is already registered under the subject returns
	# its existing ID and version. An incompatible or invalid schema fails at
	# once; anything else (the registry still starting) is retried.
	attempt=1
	until out=$(rpk registry schema create "$SUBJECT" --schema "$SCHEMA_FILE" --type avro 2>&1); do
		printf '%s\n' "$out" >&2
		case $out in
		*ncompatible* | *nvalid* | *409* | *422*)
			fail "subject $SUBJECT: the registry refused $SCHEMA_FILE"
			;;
		esac
		if [ "$attempt" -ge "$INIT_ATTEMPTS" ]; then
			fail "subject $SUBJECT: registering $SCHEMA_FILE failed $INIT_ATTEMPTS times"
		fi
		attempt=$((attempt + 1))
		sleep "$INIT_RETRY_DELAY"
	done
	printf '%s\n' "$out"
	log "subject $SUBJECT: $SCHEMA_FILE registered"
}

# own_compatibility: the subject's own compatibility level, or nothing when it
# has none. rpk asks GET /config/SUBJECT without defaultToGlobal, which
# Redpanda (like Confluent) takes as false: a subject without a level of its
# own is a per-subject error in rpk's SUBJECT LEVEL ERROR table, code 40408,
# "does not have subject-level compatibility configured" (exit code 0). Any
# other error fails the init.
own_compatibility() {
	out=$(rpk registry compatibility-level get "$SUBJECT" 2>&1) || true
	case $out in
	*'does not have subject-level compatibility'* | *40408*)
		return 0
		;;
	esac
	level=$(printf '%s\n' "$out" | table_cell LEVEL "$SUBJECT")
	case $level in
	NONE | BACKWARD | BACKWARD_TRANSITIVE | FORWARD | FORWARD_TRANSITIVE | FULL | FULL_TRANSITIVE)
		printf '%s\n' "$level"
		;;
	*)
		printf '%s\n' "$out" >&2
		fail "subject $SUBJECT: reading its compatibility level failed"
		;;
	esac
}

set_compatibility() {
	own=$(own_compatibility)
	if [ -n "$own" ]; then
		log "subject $SUBJECT: compatibility $own (the subject's own level, kept)"
		return
	fi
	# rpk prints a SUBJECT LEVEL ERROR table and exits 0 even when the registry
	# refused, so the check is the level in the subject's row.
	out=$(rpk registry compatibility-level set "$SUBJECT" --level "$COMPATIBILITY" 2>&1) || true
	if ! printf '%s\n' "$out" | awk -v s="$SUBJECT" -v l="$COMPATIBILITY" '
		$1 == s { for (i = 2; i <= NF; i++) if ($i == l) ok = 1 }
		END { exit !ok }'; then
		printf '%s\n' "$out" >&2
		fail "subject $SUBJECT: setting compatibility $COMPATIBILITY failed"
	fi
	log "subject $SUBJECT: compatibility $COMPATIBILITY (it had no level of its own)"
}

log "brokers=${RPK_BROKERS:-default} admin=${RPK_ADMIN_HOSTS:-default} registry=${RPK_REGISTRY_HOSTS:-default}"
wait_for "cluster health" cluster_healthy
ensure_topic "$TOPIC" "$PARTITIONS"
ensure_topic "$DLQ_TOPIC" "$DLQ_PARTITIONS"
wait_for "schema registry" rpk registry subject list
register_schema
set_compatibility
log "done"

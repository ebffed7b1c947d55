#!/bin/sh
# mongo-init: one-shot initiation of the MongoDB replica set of
# compose.cluster.yml (service mongo-init, same image as the members, so
# mongosh matches the server), run after every member reports healthy.
#
# Idempotent: a second `docker compose up` runs it again; it finds the set
# initiated and only waits for a primary. Two runs racing each other are fine
# too: the loser's rs.initiate fails with "already initialized", which counts
# as success.
#
# RS_NAME       replica set name, the --replSet of every member (rs0)
# RS_MEMBERS    comma-separated host:port of the members, first one first;
#               the set is initiated through the first
# POSIX sh; devstack/stackfile runs it against a fake mongosh.
set -eu

RS_NAME="${RS_NAME:-rs0}"
RS_MEMBERS="${RS_MEMBERS:-mongo:27017,mongo-1:27017,mongo-2:27017}"
INIT_ATTEMPTS="${INIT_ATTEMPTS:-60}"
INIT_RETRY_DELAY="${INIT_RETRY_DELAY:-2}"

log() {
	printf 'mongo-init: %s\n' "$*"
}

fail() {
	printf 'mongo-init: error: %s\n' "$*" >&2
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

# mongo_eval HOST JS: run JS on one member (no replica set discovery).
mongo_eval() {
	mongosh --host "$1" --quiet --norc --eval "$2"
}

member_up() {
	[ "$(mongo_eval "$1" "db.adminCommand('ping').ok")" = 1 ]
}

# rs_state: "initialized" or "uninitialized" (rs.status() throws
# NotYetInitialized until rs.initiate); any other error fails.
rs_state() {
	mongo_eval "$FIRST" 'try { rs.status(); print("initialized") } catch (e) { if (e.codeName === "NotYetInitialized") print("uninitialized"); else throw e }'
}

has_primary() {
	[ "$(mongo_eval "$FIRST" "rs.status().members.some(m => m.stateStr === 'PRIMARY')")" = true ]
}

# rs_config: the replica set configuration document, as JSON (valid JS).
rs_config() {
	printf '{"_id": "%s", "members": [' "$RS_NAME"
	id=0
	sep=
	for m in $MEMBERS; do
		printf '%s{"_id": %d, "host": "%s"}' "$sep" "$id" "$m"
		sep=', '
		id=$((id + 1))
	done
	printf ']}'
}

MEMBERS=$(printf '%s' "$RS_MEMBERS" | tr ',' ' ')
FIRST=${RS_MEMBERS%%,*}
[ -n "$FIRST" ] || fail "RS_MEMBERS is empty: set it to the members' host:port, comma-separated"

log "replica set $RS_NAME, members $RS_MEMBERS"
for m in $MEMBERS; do
	wait_for "member $m" member_up "$m"
done

state=$(rs_state 2>&1) || {
	printf '%s\n' "$state" >&2
	fail "rs.status() on $FIRST failed"
}
case $state in
initialized)
	log "replica set $RS_NAME: already initiated"
	;;
uninitialized)
	config=$(rs_config)
	if out=$(mongo_eval "$FIRST" "rs.initiate($config).ok" 2>&1); then
		log "replica set $RS_NAME: initiated with $config"
	else
		case $out in
		*"already initialized"* | *AlreadyInitialized*)
			log "replica set $RS_NAME: initiated meanwhile by another run"
			;;
		*)
			printf '%s\n' "$out" >&2
			fail "replica set $RS_NAME: rs.initiate failed"
			;;
		esac
	fi
	;;
*)
	fail "rs.status() on $FIRST: unexpected answer '$state'"
	;;
esac

wait_for "primary of $RS_NAME" has_primary
log "done"

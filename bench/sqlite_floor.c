/* The floor of agentd's persistence: the rows agentd writes for each request of the lock and
 * lease cycles, written by a C program straight through SQLite with nothing of agentd around
 * them: the same statements, the same kind of values (UUIDs as TEXT keys, time-ordered where
 * agentd's are), the same connection settings, one transaction per batch of requests as agentd commits one per loop
 * turn. Run under callgrind by bench/sqlite_floor.py, which counts each phase function's
 * instructions; what agentd's Store spends above these figures is its own.
 *
 *   sqlite_floor DATABASE TURNS PER_TURN
 *
 * DATABASE must carry agentd's schema (sqlite_floor.py has agentd create it). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *db;
static sqlite3_stmt *begin_tx, *commit_tx, *insert_node, *update_node, *insert_event, *upsert_lock, *delete_lock;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static const int64_t now = 1767225600;   /* a fixed second: heartbeats within it change nothing */

static void check(int rc, int want, const char *what) {
    if (rc != want) {
        fprintf(stderr, "sqlite_floor: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *s;
    check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, 0), SQLITE_OK, sql);
    return s;
}

static void run(sqlite3_stmt *s) {
    check(sqlite3_step(s), SQLITE_DONE, sqlite3_sql(s));
    sqlite3_reset(s);
}

static uint64_t next_random(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* A version 4 UUID from its two halves, lowercase and hyphenated, as agentd writes ids. */
static void format_uuid(uint64_t hi, uint64_t lo, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    hi = (hi & ~0xF000ULL) | 0x4000ULL;
    lo = (lo & ~(0xC000ULL << 48)) | (0x8000ULL << 48);
    int n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[n++] = '-';
        unsigned byte = (unsigned)((i < 8 ? hi >> (56 - 8 * i) : lo >> (56 - 8 * (i - 8))) & 0xFF);
        out[n++] = hex[byte >> 4];
        out[n++] = hex[byte & 15];
    }
    out[36] = 0;
}

/* Lease ids: random. */
static void new_uuid(char out[37]) { format_uuid(next_random(), next_random(), out); }

/* Task, node and event ids: rising with time, as agentd's UUIDGenerator.nextOrdered makes them
 * (the millisecond, then a sequence within it), so inserts land at the end of each index. */
static void new_ordered_uuid(char out[37]) {
    static uint64_t ms = 1767225600000ULL, sequence = 0;
    if (++sequence > 0xFFF) { ms++; sequence = 0; }
    format_uuid((ms << 16) | sequence, next_random(), out);
}

static void text(sqlite3_stmt *s, int i, const char *v) {
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC); else sqlite3_bind_null(s, i);
}

static void integer(sqlite3_stmt *s, int i, int64_t v, int present) {
    if (present) sqlite3_bind_int64(s, i, v); else sqlite3_bind_null(s, i);
}

/* The columns that change over a node's life, in agentd's order (Store.bindMutableColumns). */
static void node_columns(sqlite3_stmt *s, int first, const char *status, const char *result,
                         const char *lease, int64_t attempts) {
    text(s, first, status);
    text(s, first + 1, result);
    integer(s, first + 2, now, lease != 0);
    text(s, first + 3, lease);
    text(s, first + 4, lease ? "worker-1" : 0);
    integer(s, first + 5, now + 30, lease != 0);
    integer(s, first + 6, now, 1);
    integer(s, first + 7, (now + 30) * 1000, lease != 0);
    integer(s, first + 8, attempts, 1);
}

struct lock { char key[32], lease[37]; };
struct node { char id[37], lease[37]; };

__attribute__((noinline)) static void phase_lock_acquire(struct lock *locks, int n, int turn, int64_t *token) {
    run(begin_tx);
    for (int i = 0; i < n; i++) {
        snprintf(locks[i].key, sizeof locks[i].key, "key-%d-%d", i, turn * n + i);
        new_uuid(locks[i].lease);
        sqlite3_stmt *s = upsert_lock;
        text(s, 1, locks[i].key); text(s, 2, locks[i].lease); text(s, 3, "worker-1"); text(s, 4, 0);
        text(s, 5, 0); text(s, 6, 0); text(s, 7, "{}");
        integer(s, 8, now, 1); integer(s, 9, now + 30, 1); integer(s, 10, now, 1);
        integer(s, 11, (now + 30) * 1000, 1); integer(s, 12, ++*token, 1);
        run(s);
    }
    run(commit_tx);
}

__attribute__((noinline)) static void phase_lock_release(struct lock *locks, int n) {
    run(begin_tx);
    for (int i = 0; i < n; i++) {
        text(delete_lock, 1, locks[i].key);
        run(delete_lock);
    }
    run(commit_tx);
}

/* A new PENDING node of `task`, with no dependencies, as RegisterTask and AddNodes write it. */
static void insert_pending_node(struct node *node, const char *task) {
    new_ordered_uuid(node->id);
    sqlite3_stmt *s = insert_node;
    text(s, 1, node->id); text(s, 2, task); text(s, 3, "[]"); text(s, 4, "{}"); integer(s, 5, 0, 0);
    node_columns(s, 6, "PENDING", 0, 0, 0);
    text(s, 15, 0);
    run(s);
}

/* RegisterTask with one node: the task's row and the node's. */
__attribute__((noinline)) static void phase_task_register(struct node *nodes, int n, sqlite3_stmt *insert_task) {
    run(begin_tx);
    for (int i = 0; i < n; i++) {
        char task[37];
        new_ordered_uuid(task);
        text(insert_task, 1, task);
        run(insert_task);
        insert_pending_node(&nodes[i], task);
    }
    run(commit_tx);
}

__attribute__((noinline)) static void phase_node_add(struct node *nodes, int n, const char *task) {
    run(begin_tx);
    for (int i = 0; i < n; i++) insert_pending_node(&nodes[i], task);
    run(commit_tx);
}

/* Acquire and heartbeat write the same row (the heartbeat within the same second). */
__attribute__((noinline)) static void phase_node_lease(struct node *nodes, int n, int fresh) {
    run(begin_tx);
    for (int i = 0; i < n; i++) {
        if (fresh) new_uuid(nodes[i].lease);
        node_columns(update_node, 1, "RUNNING", 0, nodes[i].lease, 1);
        text(update_node, 10, nodes[i].id);
        run(update_node);
    }
    run(commit_tx);
}

__attribute__((noinline)) static void phase_node_acquire(struct node *nodes, int n) { phase_node_lease(nodes, n, 1); }
__attribute__((noinline)) static void phase_node_heartbeat(struct node *nodes, int n) { phase_node_lease(nodes, n, 0); }

__attribute__((noinline)) static void phase_node_complete(struct node *nodes, int n, const char *task, int64_t *seq) {
    run(begin_tx);
    for (int i = 0; i < n; i++) {
        node_columns(update_node, 1, "COMPLETED", "{}", 0, 1);
        text(update_node, 10, nodes[i].id);
        run(update_node);
        char id[37];
        new_ordered_uuid(id);
        sqlite3_stmt *s = insert_event;
        text(s, 1, id); text(s, 2, task); text(s, 3, nodes[i].id); text(s, 4, "NODE_COMPLETED");
        text(s, 5, "{}"); text(s, 6, "2026-01-01T00:00:00.000Z"); integer(s, 7, ++*seq, 1);
        run(s);
    }
    run(commit_tx);
}

/* agentd's checkpointer keeps the WAL short on a connection of its own; here, between phases,
 * outside what is counted. */
static void checkpoint(void) {
    check(sqlite3_wal_checkpoint_v2(db, 0, SQLITE_CHECKPOINT_PASSIVE, 0, 0), SQLITE_OK, "checkpoint");
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: sqlite_floor DATABASE TURNS PER_TURN\n");
        return 2;
    }
    int turns = atoi(argv[2]), per = atoi(argv[3]);
    /* agentd's serving connection (Store.init; SQLite.swift opens it without the connection's
     * mutex, and memory statistics are off); its checkpoints run on another connection. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    check(sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, 0), SQLITE_OK, "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                           "PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF; "
                           "PRAGMA wal_autocheckpoint = 0", 0, 0, 0), SQLITE_OK, "pragmas");
    begin_tx = prepare("BEGIN");
    commit_tx = prepare("COMMIT");
    /* The statements of Store.swift's Statements, word for word. */
    insert_node = prepare("INSERT INTO dag_nodes (id, task_id, dependencies, payload_schema, max_attempts, "
                          "status, result_payload, acquired_at, lease_id, lease_owner, lease_expires_at, updated_at, "
                          "lease_expires_at_ms, attempts, name) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
    update_node = prepare("UPDATE dag_nodes SET status = ?1, result_payload = ?2, acquired_at = ?3, lease_id = ?4, "
                          "lease_owner = ?5, lease_expires_at = ?6, updated_at = ?7, lease_expires_at_ms = ?8, "
                          "attempts = ?9 WHERE id = ?10");
    insert_event = prepare("INSERT INTO event_journal (id, task_id, node_id, action_type, payload, timestamp, seq) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    upsert_lock = prepare("INSERT OR REPLACE INTO resource_locks (resource_key, lease_id, owner, provider, task_id, "
                          "node_id, metadata, acquired_at, lease_expires_at, updated_at, lease_expires_at_ms, "
                          "fencing_token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    delete_lock = prepare("DELETE FROM resource_locks WHERE resource_key = ?1");

    sqlite3_stmt *insert_task = prepare("INSERT INTO global_tasks (id, goal, context, created_at) "
                                        "VALUES (?1, 'profile', '{}', '2026-01-01T00:00:00.000Z')");
    char task[37];
    new_ordered_uuid(task);
    text(insert_task, 1, task);
    run(insert_task);

    /* Phase by phase over all the requests, in bench/profile.py's order, so that the tables hold
     * what they hold there (2,048 locks before the first release, every node kept). */
    struct lock *locks = calloc((size_t)turns * per, sizeof *locks);
    struct node *nodes = calloc((size_t)turns * per, sizeof *nodes);
    int64_t token = 0, seq = 0;
    struct node *registered = calloc(per, sizeof *registered);
    for (int turn = 0; turn < turns; turn++) phase_task_register(registered, per, insert_task);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_node_add(nodes + turn * per, per, task);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_node_acquire(nodes + turn * per, per);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_node_heartbeat(nodes + turn * per, per);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_node_complete(nodes + turn * per, per, task, &seq);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_lock_acquire(locks + turn * per, per, turn, &token);
    checkpoint();
    for (int turn = 0; turn < turns; turn++) phase_lock_release(locks + turn * per, per);
    sqlite3_close(db);
    return 0;
}

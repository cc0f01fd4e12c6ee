#include <sqlite3.h>

// sqlite3_config is variadic, which Swift cannot call: these wrap the settings agentd uses.

// Memory statistics take a global mutex on every SQLite allocation; agentd never reads them.
static inline int agentd_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

// Closing the last connection would checkpoint the WAL into the database file. agentd never
// needs that (the next start reads the WAL), and a daemon that refuses a corrupt database at
// start must leave the file exactly as it found it.
static inline int agentd_sqlite3_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}

#include <sqlite3.h>

// sqlite3_config is variadic, which Swift cannot call: these wrap the settings agentd uses.

// Memory statistics take a global mutex on every SQLite allocation; agentd never reads them.
static inline int agentd_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

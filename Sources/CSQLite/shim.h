// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// sqlite3_db_config is variadic; Swift cannot call variadic C functions.
static inline int csqlite_db_config_int(sqlite3 *db, int op, int value) {
    return sqlite3_db_config(db, op, value, (int *)0);
}

/// sqlite3_config is variadic. Turning memory statistics off removes a process-wide mutex that
/// every sqlite3_malloc/sqlite3_free takes (it only feeds sqlite3_memory_used and the soft heap
/// limit, which the vault does not use). Must run before sqlite3_initialize; SQLITE_MISUSE after.
static inline int csqlite_config_memstatus(int on) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, on);
}

#ifndef AGENTD_POWERLOSS_H
#define AGENTD_POWERLOSS_H

// A test-only SQLite VFS that simulates a power cut. It wraps the default (unix) VFS and keeps
// every write to a database, journal or WAL file in this process's memory until that file is
// synced (xSync); reads see the pending writes, as they would see the kernel's page cache. Only
// xSync writes them through to the real file. A SIGKILL of the process then loses exactly what
// a power cut would lose: everything written since each file's last sync.
//
// Installed as the default VFS, so that every connection of the process (the serving one, the
// checkpointer, the WAL syncer) shares the same pending writes, as they share the page cache.
// A file's pending writes are also written through when its last handle in the process closes
// (a clean exit hands them to the kernel, which a later process reads).
//
// Test hook: with `pause_ms` > 0 and a `mark_path`, the first write to a main database file
// after its last sync (in WAL mode, the start of a checkpoint copying pages back) creates
// `mark_path` and then sleeps `pause_ms`, so that a harness watching for the file can cut the
// power while the checkpoint is half done.

#ifdef __cplusplus
extern "C" {
#endif

// Registers the VFS as the process's default. Call before the first connection opens.
// Returns SQLITE_OK, or an SQLite error code. `mark_path` may be NULL (copied).
int agentd_powerloss_install(const char *mark_path, int pause_ms);

#ifdef __cplusplus
}
#endif

#endif

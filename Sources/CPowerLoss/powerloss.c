// A power-loss simulator for SQLite: see include/agentd_powerloss.h.
//
// Each database, journal and WAL file open in the process has one shared Node (found by
// name, as the kernel finds the inode), holding the file's writes since its last sync as
// whole 4 KiB blocks in a hash table, the size the process sees, and how far the real file
// was truncated meanwhile. A read takes pending blocks from memory and the rest from the real
// file; xSync writes the pending blocks through and forgets them. Nothing else reaches the
// real file, so after a SIGKILL the real files hold what was synced and nothing more.
//
// Everything else (locks, the -shm wal-index, which the unix VFS maps into memory) goes to the
// real unix VFS untouched. The -shm needs no simulation: the first connection to open a WAL
// database after every connection has gone (which a kill ensures) truncates the -shm and
// rebuilds the index from the WAL, whatever the file held.
//
// One mutex guards every Node: the serving connection, the background checkpointer and the
// WAL syncer run on different threads. The real VFS is called with the mutex held; for
// pending blocks that is a memcpy, for the rest a pread or pwrite to the page cache.

#include "agentd_powerloss.h"

#include <sqlite3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>

#define BLOCK_SIZE 4096
#define NO_LIMIT INT64_MAX

typedef struct Block {
    sqlite3_int64 index;
    unsigned char data[BLOCK_SIZE];
} Block;

typedef struct Node {
    char *name;
    int refs;
    int isMainDb;
    int dirty;                  // anything pending: blocks or a truncation
    sqlite3_int64 size;         // the size the process sees
    sqlite3_int64 baseLimit;    // real bytes from here on were truncated away (pending)
    Block **slots;              // open addressing, linear probing; NULL is empty
    size_t capacity;            // a power of two, or 0
    size_t count;
    struct Node *next;
} Node;

typedef struct PowerLossFile {
    sqlite3_file base;
    Node *node;                 // NULL: a temporary file, passed straight through
    sqlite3_file *real;         // the unix VFS's file, just after this struct
} PowerLossFile;

static sqlite3_vfs *realVfs;
static sqlite3_vfs powerLossVfs;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static Node *nodes;
static char *markPath;
static int pauseMs;

// MARK: - Pending blocks

static size_t slotOf(const Node *node, sqlite3_int64 index) {
    uint64_t h = (uint64_t)index * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (node->capacity - 1);
}

static Block *findBlock(const Node *node, sqlite3_int64 index) {
    if (node->capacity == 0) return NULL;
    for (size_t i = slotOf(node, index);; i = (i + 1) & (node->capacity - 1)) {
        Block *block = node->slots[i];
        if (block == NULL) return NULL;
        if (block->index == index) return block;
    }
}

static void placeBlock(Node *node, Block *block) {
    size_t i = slotOf(node, block->index);
    while (node->slots[i] != NULL) i = (i + 1) & (node->capacity - 1);
    node->slots[i] = block;
}

static int resize(Node *node, size_t capacity) {
    Block **old = node->slots;
    size_t oldCapacity = node->capacity;
    Block **slots = calloc(capacity, sizeof(Block *));
    if (slots == NULL) return SQLITE_NOMEM;
    node->slots = slots;
    node->capacity = capacity;
    for (size_t i = 0; i < oldCapacity; i++) {
        if (old[i] != NULL) placeBlock(node, old[i]);
    }
    free(old);
    return SQLITE_OK;
}

static void dropBlocks(Node *node) {
    for (size_t i = 0; i < node->capacity; i++) {
        free(node->slots[i]);
    }
    free(node->slots);
    node->slots = NULL;
    node->capacity = 0;
    node->count = 0;
}

// Reads `amount` bytes of the real file at `offset` that the process still sees (below
// baseLimit); zeros elsewhere.
static int readBase(Node *node, sqlite3_file *real, unsigned char *out, sqlite3_int64 amount, sqlite3_int64 offset) {
    memset(out, 0, (size_t)amount);
    sqlite3_int64 end = offset + amount;
    if (end > node->baseLimit) end = node->baseLimit;
    if (offset >= end) return SQLITE_OK;
    int rc = real->pMethods->xRead(real, out, (int)(end - offset), offset);
    return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc;
}

// The pending block `index`, made from the real file's content if it is not pending yet.
static int blockForWriting(Node *node, sqlite3_file *real, sqlite3_int64 index, Block **result) {
    Block *block = findBlock(node, index);
    if (block == NULL) {
        if ((node->count + 1) * 2 > node->capacity) {
            int rc = resize(node, node->capacity ? node->capacity * 2 : 64);
            if (rc != SQLITE_OK) return rc;
        }
        block = malloc(sizeof(Block));
        if (block == NULL) return SQLITE_NOMEM;
        block->index = index;
        int rc = readBase(node, real, block->data, BLOCK_SIZE, index * BLOCK_SIZE);
        if (rc != SQLITE_OK) {
            free(block);
            return rc;
        }
        placeBlock(node, block);
        node->count++;
    }
    *result = block;
    return SQLITE_OK;
}

// Writes everything pending through to the real file, in the order a sync makes durable:
// the truncation, the blocks, the final size.
static int writeThrough(Node *node, sqlite3_file *real) {
    if (!node->dirty) return SQLITE_OK;
    int rc = SQLITE_OK;
    if (node->baseLimit != NO_LIMIT) {
        rc = real->pMethods->xTruncate(real, node->baseLimit);
        if (rc != SQLITE_OK) return rc;
    }
    for (size_t i = 0; i < node->capacity; i++) {
        Block *block = node->slots[i];
        if (block == NULL) continue;
        sqlite3_int64 offset = block->index * BLOCK_SIZE;
        if (offset >= node->size) continue;
        sqlite3_int64 amount = node->size - offset < BLOCK_SIZE ? node->size - offset : BLOCK_SIZE;
        rc = real->pMethods->xWrite(real, block->data, (int)amount, offset);
        if (rc != SQLITE_OK) return rc;
    }
    sqlite3_int64 realSize = 0;
    rc = real->pMethods->xFileSize(real, &realSize);
    if (rc == SQLITE_OK && realSize != node->size) rc = real->pMethods->xTruncate(real, node->size);
    if (rc != SQLITE_OK) return rc;
    dropBlocks(node);
    node->baseLimit = NO_LIMIT;
    node->dirty = 0;
    return SQLITE_OK;
}

static Node *findNode(const char *name) {
    for (Node *node = nodes; node != NULL; node = node->next) {
        if (strcmp(node->name, name) == 0) return node;
    }
    return NULL;
}

// MARK: - The checkpoint hook

static void markAndPause(void) {
    int fd = open(markPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)!write(fd, "checkpoint\n", 11);
        close(fd);
    }
    struct timespec delay = { pauseMs / 1000, (long)(pauseMs % 1000) * 1000000L };
    while (nanosleep(&delay, &delay) != 0) {}
}

// MARK: - File methods

static int plClose(sqlite3_file *file) {
    PowerLossFile *p = (PowerLossFile *)file;
    int rc = SQLITE_OK;
    if (p->node != NULL) {
        pthread_mutex_lock(&mutex);
        Node *node = p->node;
        if (--node->refs == 0) {
            // A clean close hands the writes to the kernel, which the next process reads.
            rc = writeThrough(node, p->real);
            dropBlocks(node);
            for (Node **link = &nodes; *link != NULL; link = &(*link)->next) {
                if (*link == node) {
                    *link = node->next;
                    break;
                }
            }
            free(node->name);
            free(node);
        }
        pthread_mutex_unlock(&mutex);
        p->node = NULL;
    }
    int closed = p->real->pMethods->xClose(p->real);
    return rc != SQLITE_OK ? rc : closed;
}

static int plRead(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    PowerLossFile *p = (PowerLossFile *)file;
    Node *node = p->node;
    if (node == NULL) return p->real->pMethods->xRead(p->real, buffer, amount, offset);
    pthread_mutex_lock(&mutex);
    int rc = SQLITE_OK;
    unsigned char *out = buffer;
    sqlite3_int64 position = offset, end = offset + amount;
    while (position < end) {
        sqlite3_int64 index = position / BLOCK_SIZE;
        Block *block = findBlock(node, index);
        if (block != NULL) {
            sqlite3_int64 within = position - index * BLOCK_SIZE;
            sqlite3_int64 n = BLOCK_SIZE - within < end - position ? BLOCK_SIZE - within : end - position;
            memcpy(out, block->data + within, (size_t)n);
            out += n;
            position += n;
            continue;
        }
        // A run of blocks that are not pending: one read of the real file.
        sqlite3_int64 runEnd = (index + 1) * BLOCK_SIZE;
        while (runEnd < end && findBlock(node, runEnd / BLOCK_SIZE) == NULL) runEnd += BLOCK_SIZE;
        if (runEnd > end) runEnd = end;
        rc = readBase(node, p->real, out, runEnd - position, position);
        if (rc != SQLITE_OK) break;
        out += runEnd - position;
        position = runEnd;
    }
    if (rc == SQLITE_OK && end > node->size) {
        sqlite3_int64 from = offset > node->size ? offset : node->size;
        memset((unsigned char *)buffer + (from - offset), 0, (size_t)(end - from));
        rc = SQLITE_IOERR_SHORT_READ;
    }
    pthread_mutex_unlock(&mutex);
    return rc;
}

static int plWrite(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    PowerLossFile *p = (PowerLossFile *)file;
    Node *node = p->node;
    if (node == NULL) return p->real->pMethods->xWrite(p->real, buffer, amount, offset);
    pthread_mutex_lock(&mutex);
    int pause = node->isMainDb && !node->dirty && markPath != NULL && pauseMs > 0;
    int rc = SQLITE_OK;
    const unsigned char *in = buffer;
    sqlite3_int64 position = offset, end = offset + amount;
    while (position < end) {
        sqlite3_int64 index = position / BLOCK_SIZE;
        Block *block;
        rc = blockForWriting(node, p->real, index, &block);
        if (rc != SQLITE_OK) break;
        sqlite3_int64 within = position - index * BLOCK_SIZE;
        sqlite3_int64 n = BLOCK_SIZE - within < end - position ? BLOCK_SIZE - within : end - position;
        memcpy(block->data + within, in, (size_t)n);
        in += n;
        position += n;
        node->dirty = 1;
    }
    if (position > node->size) node->size = position;
    pthread_mutex_unlock(&mutex);
    if (pause && rc == SQLITE_OK) markAndPause();
    return rc;
}

static int plTruncate(sqlite3_file *file, sqlite3_int64 size) {
    PowerLossFile *p = (PowerLossFile *)file;
    Node *node = p->node;
    if (node == NULL) return p->real->pMethods->xTruncate(p->real, size);
    pthread_mutex_lock(&mutex);
    int rc = SQLITE_OK;
    // Blocks wholly past the new end go; the one it cuts keeps zeros after it.
    size_t kept = 0;
    for (size_t i = 0; i < node->capacity; i++) {
        Block *block = node->slots[i];
        if (block == NULL) continue;
        if (block->index * BLOCK_SIZE >= size) {
            free(block);
            node->slots[i] = NULL;
            continue;
        }
        kept++;
        if ((block->index + 1) * BLOCK_SIZE > size) {
            sqlite3_int64 within = size - block->index * BLOCK_SIZE;
            memset(block->data + within, 0, (size_t)(BLOCK_SIZE - within));
        }
    }
    if (kept != node->count) {
        node->count = kept;
        rc = resize(node, node->capacity);   // re-place what is left: probing needs no holes
    }
    if (size < node->baseLimit) node->baseLimit = size;
    node->size = size;
    node->dirty = 1;
    pthread_mutex_unlock(&mutex);
    return rc;
}

static int plSync(sqlite3_file *file, int flags) {
    PowerLossFile *p = (PowerLossFile *)file;
    if (p->node == NULL) return p->real->pMethods->xSync(p->real, flags);
    pthread_mutex_lock(&mutex);
    int rc = writeThrough(p->node, p->real);
    pthread_mutex_unlock(&mutex);
    return rc;
}

static int plFileSize(sqlite3_file *file, sqlite3_int64 *size) {
    PowerLossFile *p = (PowerLossFile *)file;
    if (p->node == NULL) return p->real->pMethods->xFileSize(p->real, size);
    pthread_mutex_lock(&mutex);
    *size = p->node->size;
    pthread_mutex_unlock(&mutex);
    return SQLITE_OK;
}

static int plLock(sqlite3_file *file, int level) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xLock(p->real, level);
}

static int plUnlock(sqlite3_file *file, int level) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xUnlock(p->real, level);
}

static int plCheckReservedLock(sqlite3_file *file, int *result) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xCheckReservedLock(p->real, result);
}

static int plFileControl(sqlite3_file *file, int op, void *argument) {
    PowerLossFile *p = (PowerLossFile *)file;
    // Size hints grow the real file (ftruncate/fallocate) behind the pending writes' back:
    // decline them, as a VFS may.
    if (p->node != NULL && (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE)) return SQLITE_NOTFOUND;
    return p->real->pMethods->xFileControl(p->real, op, argument);
}

static int plSectorSize(sqlite3_file *file) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xSectorSize(p->real);
}

static int plDeviceCharacteristics(sqlite3_file *file) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int plShmMap(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xShmMap(p->real, region, size, extend, out);
}

static int plShmLock(sqlite3_file *file, int offset, int n, int flags) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

static void plShmBarrier(sqlite3_file *file) {
    PowerLossFile *p = (PowerLossFile *)file;
    p->real->pMethods->xShmBarrier(p->real);
}

static int plShmUnmap(sqlite3_file *file, int deleteFlag) {
    PowerLossFile *p = (PowerLossFile *)file;
    return p->real->pMethods->xShmUnmap(p->real, deleteFlag);
}

// Version 2: no xFetch/xUnfetch, so SQLite never memory-maps a file past the pending writes.
static const sqlite3_io_methods powerLossMethods = {
    2,
    plClose, plRead, plWrite, plTruncate, plSync, plFileSize,
    plLock, plUnlock, plCheckReservedLock, plFileControl, plSectorSize, plDeviceCharacteristics,
    plShmMap, plShmLock, plShmBarrier, plShmUnmap,
    NULL, NULL,
};

// MARK: - VFS methods

static int plOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    PowerLossFile *p = (PowerLossFile *)file;
    p->real = (sqlite3_file *)&p[1];
    p->node = NULL;
    p->base.pMethods = NULL;
    int rc = realVfs->xOpen(realVfs, name, p->real, flags, outFlags);
    if (rc != SQLITE_OK) return rc;
    p->base.pMethods = &powerLossMethods;
    int durable = flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL);
    if (name == NULL || !durable) return SQLITE_OK;

    pthread_mutex_lock(&mutex);
    Node *node = findNode(name);
    if (node == NULL) {
        node = calloc(1, sizeof(Node));
        char *copy = node ? strdup(name) : NULL;
        sqlite3_int64 size = 0;
        rc = copy ? p->real->pMethods->xFileSize(p->real, &size) : SQLITE_NOMEM;
        if (rc != SQLITE_OK) {
            free(copy);
            free(node);
            pthread_mutex_unlock(&mutex);
            p->real->pMethods->xClose(p->real);
            p->base.pMethods = NULL;
            return rc;
        }
        node->name = copy;
        node->isMainDb = (flags & SQLITE_OPEN_MAIN_DB) != 0;
        node->size = size;
        node->baseLimit = NO_LIMIT;
        node->next = nodes;
        nodes = node;
    }
    node->refs++;
    p->node = node;
    pthread_mutex_unlock(&mutex);
    return SQLITE_OK;
}

static int plDelete(sqlite3_vfs *vfs, const char *name, int syncDirectory) {
    (void)vfs;
    pthread_mutex_lock(&mutex);
    Node *node = findNode(name);
    if (node != NULL) {
        // Whatever was pending for the file goes with it.
        dropBlocks(node);
        node->size = 0;
        node->baseLimit = NO_LIMIT;
        node->dirty = 0;
    }
    pthread_mutex_unlock(&mutex);
    return realVfs->xDelete(realVfs, name, syncDirectory);
}

static int plAccess(sqlite3_vfs *vfs, const char *name, int flags, int *result) {
    (void)vfs;
    return realVfs->xAccess(realVfs, name, flags, result);
}

static int plFullPathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    (void)vfs;
    return realVfs->xFullPathname(realVfs, name, size, out);
}

static void *plDlOpen(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return realVfs->xDlOpen(realVfs, name);
}

static void plDlError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    realVfs->xDlError(realVfs, size, out);
}

static void (*plDlSym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return realVfs->xDlSym(realVfs, handle, symbol);
}

static void plDlClose(sqlite3_vfs *vfs, void *handle) {
    (void)vfs;
    realVfs->xDlClose(realVfs, handle);
}

static int plRandomness(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return realVfs->xRandomness(realVfs, size, out);
}

static int plSleep(sqlite3_vfs *vfs, int microseconds) {
    (void)vfs;
    return realVfs->xSleep(realVfs, microseconds);
}

static int plCurrentTime(sqlite3_vfs *vfs, double *out) {
    (void)vfs;
    return realVfs->xCurrentTime(realVfs, out);
}

static int plGetLastError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return realVfs->xGetLastError(realVfs, size, out);
}

static int plCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    return realVfs->xCurrentTimeInt64(realVfs, out);
}

int agentd_powerloss_install(const char *mark_path, int pause_ms) {
    if (realVfs != NULL) return SQLITE_OK;
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (real == NULL) return SQLITE_ERROR;
    if (mark_path != NULL && mark_path[0] != '\0') {
        markPath = strdup(mark_path);
        if (markPath == NULL) return SQLITE_NOMEM;
    }
    pauseMs = pause_ms;
    realVfs = real;
    powerLossVfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(PowerLossFile) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = "agentd-powerloss",
        .xOpen = plOpen,
        .xDelete = plDelete,
        .xAccess = plAccess,
        .xFullPathname = plFullPathname,
        .xDlOpen = plDlOpen,
        .xDlError = plDlError,
        .xDlSym = plDlSym,
        .xDlClose = plDlClose,
        .xRandomness = plRandomness,
        .xSleep = plSleep,
        .xCurrentTime = plCurrentTime,
        .xGetLastError = plGetLastError,
        .xCurrentTimeInt64 = plCurrentTimeInt64,
    };
    return sqlite3_vfs_register(&powerLossVfs, 1);
}

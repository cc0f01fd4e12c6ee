#define _GNU_SOURCE
#include "CProcess.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

int agentd_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL);
}

int agentd_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int agentd_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

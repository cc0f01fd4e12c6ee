#ifndef AGENTD_CPROCESS_H
#define AGENTD_CPROCESS_H

// The few Linux calls the CLI's child processes need that Swift's Glibc module does not
// give: variadic (prctl) or behind _GNU_SOURCE (memfd_create, pipe2). Each returns what the
// call returns, with errno set on failure.

/// prctl(PR_SET_PDEATHSIG, signal): the kernel sends `signal` to this process when the
/// thread that created it ends.
int agentd_set_parent_death_signal(int signal);

/// memfd_create(name, MFD_CLOEXEC): an anonymous file in memory.
int agentd_memfd(const char *name);

/// pipe2(fds, O_CLOEXEC).
int agentd_pipe_cloexec(int fds[2]);

#endif

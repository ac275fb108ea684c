// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/socket.h>
#include <sys/epoll.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC, filling in the peer address (may be NULL).
int csocket_accept_nonblocking_address(int fd, struct sockaddr *address, socklen_t *length);

// <sys/epoll.h> is re-exported here: the Glibc module Swift imports does not include it, and
// the HTTP server watches its client sockets with epoll (see EventLoop.swift).

// <malloc.h> is re-exported for mallopt(3): the server executable limits glibc to one malloc
// arena at start-up (see MallocTuning.swift in session-vault); the Glibc module does not include it.
#include <malloc.h>

#include <sys/types.h>

/// For `session-vault run`: fork, then in the child set PR_SET_PDEATHSIG (`death_signal`: the
/// child gets it when the wrapper dies, even by SIGKILL), reset every signal's disposition and
/// the signal mask, and execve(`path`, `argv`, `envp`). Returns the child's pid, or -1 with
/// `*error` set to the errno of fork or of the failed execve (the child is then already reaped).
pid_t csocket_spawn_child(const char *path, char *const argv[], char *const envp[], int death_signal, int *error);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process, as
/// to PID 1, so that it reaps them. Returns prctl's result.
int csocket_set_child_subreaper(void);

// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC. Glibc's Swift overlay does not expose accept4
/// (it needs _GNU_SOURCE), so this one-function C target provides it.
/// Returns the new fd, or -1 with errno set.
int csocket_accept_nonblocking(int fd);

/// The same as csocket_accept_nonblocking, also filling in the peer address (may be NULL).
int csocket_accept_nonblocking_address(int fd, struct sockaddr *address, socklen_t *length);

// <sys/epoll.h> and <sys/eventfd.h> are re-exported here: the Glibc module Swift imports does not
// include them, and the HTTP server watches its client sockets with epoll (see EventLoop.swift).

// <malloc.h> is re-exported for mallopt(3): the server executable limits glibc to one malloc
// arena at start-up (see MallocTuning.swift in session-vault); the Glibc module does not include it.
#include <malloc.h>

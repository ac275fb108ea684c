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

// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <sys/socket.h>
#include <stddef.h>
#include <unistd.h>
#include "CSocketShims.h"

int csocket_accept_nonblocking_address(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}


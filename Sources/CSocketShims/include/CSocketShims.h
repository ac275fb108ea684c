// SPDX-License-Identifier: Apache-2.0
#pragma once

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC. Glibc's Swift overlay does not expose accept4
/// (it needs _GNU_SOURCE), so this one-function C target provides it.
/// Returns the new fd, or -1 with errno set.
int csocket_accept_nonblocking(int fd);

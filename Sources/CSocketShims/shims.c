// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <sys/socket.h>
#include <stddef.h>
#include <unistd.h>
#include "CSocketShims.h"

int csocket_accept_nonblocking_address(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

pid_t csocket_spawn_child(const char *path, char *const argv[], char *const envp[], int death_signal, int *error) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) { *error = errno; return -1; }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *error = errno;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here to execve.
        close(report[0]);
        if (death_signal > 0) {
            prctl(PR_SET_PDEATHSIG, death_signal);
            if (getppid() != parent) _exit(127);  // the wrapper died before prctl took effect
        }
        for (int signo = 1; signo < NSIG; signo++) {
            if (signo != SIGKILL && signo != SIGSTOP) signal(signo, SIG_DFL);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
        int code = errno;
        ssize_t ignored = write(report[1], &code, sizeof code);
        (void)ignored;
        _exit(127);
    }
    close(report[1]);
    int code = 0;
    ssize_t n;
    do {
        n = read(report[0], &code, sizeof code);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof code) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *error = code;
        return -1;
    }
    return pid;
}

int csocket_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1);
}

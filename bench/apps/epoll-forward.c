/* The floor of runner's design for signal forwarding (bench/signals.sh EXTRA=...): a
 * supervisor that blocks every signal, waits in epoll on a signalfd, reads it and kill()s
 * the child, and does nothing else. What runner costs above this is runner's own work;
 * what this costs above tini (sigtimedwait, then kill) is the epoll/signalfd wait itself.
 * Usage: epoll-forward -- PROGRAM [ARGS...]; exits with the child's code. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int sfd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    if (sfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0) return 1;
    pid_t child = fork();
    if (child == 0) {
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    for (;;) {
        struct epoll_event out[8];
        if (epoll_wait(ep, out, 8, -1) <= 0) continue;
        struct signalfd_siginfo si[8];
        ssize_t n;
        while ((n = read(sfd, si, sizeof si)) > 0) {
            for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++) {
                int st;
                if (si[i].ssi_signo != SIGCHLD) kill(child, (int)si[i].ssi_signo);
                else if (waitpid(child, &st, WNOHANG) == child)
                    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
    }
}

/* The floor under bench/startup.sh: no supervisor, only what any supervisor that waits for
 * READY=1 must do. It binds a datagram socket, starts N copies of the program with
 * NOTIFY_SOCKET naming it, and prints "ready" on stdout once N READY=1 have arrived. What
 * a supervisor takes above this is its own cost; what this takes is the apps' own.
 * An fd passed with a message (systemd-notify's BARRIER=1 waits for it to be closed) is
 * closed at once, as a supervisor must. The apps stay in this process group, so the bench
 * ends them with one killpg. Usage: notify-floor SOCKET N -- PROGRAM [ARGS...] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--") != 0) return 2;
    const char *path = argv[1];
    int n = atoi(argv[2]);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return 2;
    strcpy(a.sun_path, path);
    unlink(path);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    int on = 1;
    setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    if (setenv("NOTIFY_SOCKET", path, 1) != 0) return 1;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            execvp(argv[4], argv + 4);
            _exit(127);
        }
    }
    int ready = 0;
    while (ready < n) {
        char buf[4096];
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(int) * 16) + CMSG_SPACE(sizeof(struct ucred))];
        } c;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &c, .msg_controllen = sizeof c};
        ssize_t got = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
        if (got < 0) return 1;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            int *fds = (int *)CMSG_DATA(h);
            for (size_t k = 0; k < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) close(fds[k]);
        }
        buf[got] = 0;
        /* READY=1 as a whole line of the message, as sd_notify(3) defines it. */
        for (char *line = buf; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (strncmp(line, "READY=1", 7) == 0 && (line[7] == '\n' || line[7] == 0)) {
                ready++;
                break;
            }
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
}

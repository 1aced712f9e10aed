/*
 * orphans: create N orphan processes under the PID-1 supervisor and time how
 * fast that supervisor reaps them.  Meant to run as the only child of the
 * supervisor inside a fresh PID namespace:
 *
 *     unshare --pid --fork --mount-proc SUPERVISOR [--] ./orphans N MODE
 *
 * For each i < N the spawner forks a child, the child forks a grandchild and
 * exits at once; the spawner reaps the child, so the grandchild is re-parented
 * to PID 1 (the supervisor under test).  Each grandchild writes its exit time
 * (CLOCK_MONOTONIC) into a shared page right before _exit(0), so the exit
 * time of the last orphan is known exactly.
 *
 * MODE
 *   burst   grandchildren block on a pipe until all N exist, then the spawner
 *           closes the pipe and they all exit together: pure reap throughput.
 *   stream  grandchildren _exit(0) as soon as they are forked: orphans arrive
 *           one by one while the spawner keeps forking.
 *
 * After the last fork (burst: after the release) the spawner polls /proc every
 * POLL_US microseconds (readdir only: a zombie keeps its /proc entry until it
 * is reaped) until no process but PID 1 and itself is left, then prints
 *
 *   RESULT mode=.. n=.. spawn_ms=.. drain_ms=.. tail_ms=.. total_ms=.. sup_cpu_ms=.. polls=.. left=..
 *
 *   spawn_ms   time to create the N orphans
 *   drain_ms   burst: release -> zero left;  stream: last fork -> zero left
 *   tail_ms    exit time of the last orphan -> zero left (a bound on the
 *              worst orphan's exit-to-reaped latency, +- one poll period)
 *   total_ms   start -> zero left
 *   sup_cpu_ms user+system CPU time PID 1 spent during the run (10 ms ticks)
 *   left       processes still unreaped at the deadline (0 unless it failed)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_US 1000
#define DEADLINE_MS 30000

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Number of processes visible in /proc (numeric entries). */
static int count_procs(void) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9') n++;
    closedir(d);
    return n;
}

/* utime + stime of PID 1 in clock ticks, -1 when unreadable. */
static long long pid1_cpu_ticks(void) {
    char buf[1024];
    FILE *f = fopen("/proc/1/stat", "r");
    if (!f) return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* after ") " come fields 3.. ; utime is field 14, stime field 15 */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) { st = strtoull(tok, NULL, 10); break; }
    }
    return (long long)(ut + st);
}

static double ms(uint64_t a, uint64_t b) { return (double)((int64_t)(b - a)) / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N burst|stream\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int burst = strcmp(argv[2], "burst") == 0;
    if (n <= 0 || (!burst && strcmp(argv[2], "stream") != 0)) {
        fprintf(stderr, "usage: %s N burst|stream\n", argv[0]);
        return 2;
    }
    if (getppid() != 1)
        fprintf(stderr, "orphans: warning: parent is pid %d, not 1\n", (int)getppid());

    volatile uint64_t *exits = mmap(NULL, (size_t)n * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (exits == MAP_FAILED) { perror("mmap"); return 1; }

    int pfd[2] = {-1, -1};
    if (burst && pipe2(pfd, O_CLOEXEC) < 0) { perror("pipe"); return 1; }

    int baseline = count_procs(); /* PID 1 and ourselves */
    long long cpu0 = pid1_cpu_ticks();
    uint64_t t_start = now_ns();

    for (long i = 0; i < n; i++) {
        pid_t c = fork();
        if (c < 0) { perror("fork"); return 1; }
        if (c == 0) {
            pid_t g = fork();
            if (g == 0) {
                if (burst) {
                    char b;
                    close(pfd[1]);
                    while (read(pfd[0], &b, 1) < 0 && errno == EINTR) {}
                }
                exits[i] = now_ns();
                _exit(0);
            }
            _exit(g < 0 ? 1 : 0);
        }
        int st;
        while (waitpid(c, &st, 0) < 0 && errno == EINTR) {}
    }
    uint64_t t_spawned = now_ns();
    uint64_t t_release = t_spawned;
    if (burst) {
        close(pfd[0]);
        t_release = now_ns();
        close(pfd[1]); /* EOF for every grandchild: they all exit now */
    }

    long polls = 0;
    int left;
    uint64_t t_done;
    struct timespec pause = {0, POLL_US * 1000L};
    for (;;) {
        left = count_procs() - baseline;
        t_done = now_ns();
        polls++;
        if (left <= 0) break;
        if (ms(t_start, t_done) > DEADLINE_MS) break;
        nanosleep(&pause, NULL);
    }
    long long cpu1 = pid1_cpu_ticks();

    uint64_t last_exit = 0;
    long missing = 0;
    for (long i = 0; i < n; i++) {
        if (exits[i] == 0) missing++;
        else if (exits[i] > last_exit) last_exit = exits[i];
    }
    double tick_ms = 1000.0 / (double)sysconf(_SC_CLK_TCK);
    printf("RESULT mode=%s n=%ld spawn_ms=%.2f drain_ms=%.2f tail_ms=%.2f total_ms=%.2f "
           "sup_cpu_ms=%.0f polls=%ld left=%d missing=%ld\n",
           burst ? "burst" : "stream", n, ms(t_start, t_spawned), ms(t_release, t_done),
           last_exit ? ms(last_exit, t_done) : -1.0, ms(t_start, t_done),
           (cpu0 >= 0 && cpu1 >= 0) ? (double)(cpu1 - cpu0) * tick_ms : -1.0, polls,
           left < 0 ? 0 : left, missing);
    fflush(stdout);
    return left > 0 ? 1 : 0;
}

// measure-run SECONDS COMMAND [ARGS...]: runs COMMAND, kills it (SIGKILL) after SECONDS, and
// prints one line to stdout: "exit=N maxrss_kb=M wall_ms=T timed_out=0|1", the child's own
// peak RSS (wait4's rusage) and wall time. The hostile-input tests use it to bound what a
// bad file may cost `muse ask`; its stdout and stderr pass through to stderr.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: measure-run SECONDS COMMAND [ARGS...]\n");
        return 2;
    }
    const double limit_s = atof(argv[1]);
    const auto   t0      = std::chrono::steady_clock::now();
    const pid_t  pid     = fork();
    if (pid == 0) {
        dup2(2, 1);  // the child's output goes to stderr; stdout carries only the result line
        execvp(argv[2], argv + 2);
        perror("exec");
        _exit(127);
    }
    int           status    = 0;
    struct rusage ru        = {};
    bool          timed_out = false;
    for (;;) {
        const pid_t r = wait4(pid, &status, WNOHANG, &ru);
        if (r == pid) {
            break;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!timed_out && s > limit_s) {
            timed_out = true;
            kill(pid, SIGKILL);
        }
        usleep(2000);
    }
    const long wall_ms = (long) std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    const int  code    = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("exit=%d maxrss_kb=%ld wall_ms=%ld timed_out=%d\n", code, ru.ru_maxrss, wall_ms, timed_out ? 1 : 0);
    return 0;
}

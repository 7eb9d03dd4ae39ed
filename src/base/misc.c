/* misc.c - clocks and the terminal progress bar. */
#include "base.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double lc_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lc_progress_start(lc_progress *p, const char *label) {
    p->label = label;
    p->t0 = p->last = lc_time_s();
    p->last_pct = -1;
    p->tty = isatty(2);
}

void lc_progress_update(lc_progress *p, double fraction) {
    if (!p->tty) return;
    int pct = (int)(fraction * 100.0);
    double now = lc_time_s();
    if (pct == p->last_pct || (now - p->last < 0.1 && pct < 100)) return;
    p->last_pct = pct;
    p->last = now;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    double el = now - p->t0, eta = fraction > 0.01 ? el / fraction - el : 0;
    fprintf(stderr, "\r%s [%s] %3d%% %5.1fs (eta %.0fs)  ", p->label, bar, pct, el, eta);
    fflush(stderr);
}

void lc_progress_end(lc_progress *p) {
    if (!p->tty || p->last_pct < 0) return;
    lc_progress_update(p, 1.0);
    fprintf(stderr, "\n");
}

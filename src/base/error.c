/* error.c - status names, the thread-local error message, and library logging.
** The message is per thread so a model shared by threads reports each caller's own failure. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>

static _Thread_local char err_msg[1024] = "no error";

const char *lc_strerror(int status) {
    switch (status) {
    case LC_OK: return "ok";
    case LC_E_IO: return "I/O error";
    case LC_E_FORMAT: return "format error";
    case LC_E_NOMEM: return "out of memory";
    case LC_E_INVALID: return "invalid argument";
    case LC_E_UNSUPPORTED: return "unsupported";
    case LC_E_RANGE: return "out of range";
    default: return "unknown error";
    }
}

const char *lc_last_error(void) { return err_msg; }

int lc__set_error(int status, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    if (getenv("LLAMAC_ERROR_ORIGIN")) { /* debugging aid: where the error was raised */
        size_t n = strlen(err_msg);
        snprintf(err_msg + n, sizeof err_msg - n, " [%s:%d]", file, line);
    }
    return status;
}

int lc__error_prefix(int status, const char *fmt, ...) {
    char prefix[512], old[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    size_t np = strlen(prefix);
    if (np >= sizeof err_msg) np = sizeof err_msg - 1;
    memcpy(err_msg, prefix, np);
    size_t no = strlen(old);
    if (no > sizeof err_msg - 1 - np) no = sizeof err_msg - 1 - np;
    memcpy(err_msg + np, old, no);
    err_msg[np + no] = 0;
    return status;
}

int lc__log_level = -1; /* -1: not yet read from LLAMAC_LOG */

void lc__log(int level, const char *fmt, ...) {
    if (lc__log_level < 0) {
        const char *e = getenv("LLAMAC_LOG");
        lc__log_level = e ? atoi(e) : 1;
    }
    if (level > lc__log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fputs(level <= 1 ? "llamac: warning: " : "llamac: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

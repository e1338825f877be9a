/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * die(): print "PROGRAM: message" to stderr and exit 1.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#ifndef VTPM_DIE_H
#define VTPM_DIE_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static inline void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#endif /* VTPM_DIE_H */

/*
 * QTest helpers for vtpm-pci: reach the card and move TPM commands
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_VTPM_PCI_UTIL_H
#define TESTS_VTPM_PCI_UTIL_H

#include "libqtest.h"

/* Where the helpers map BAR 0 when nothing has placed it yet */
#define VTPM_PCI_TEST_PORT  0xd000
/* ... and BAR 2, the buffer: in the PCI hole of pc and of q35 */
#define VTPM_PCI_TEST_BUFFER    0xe1000000

/*
 * The poll-ns property's default and largest value, as
 * docs/specs/vtpm-pci.rst gives them (the card's own are not visible to
 * the tests: they check that the card keeps to the spec)
 */
#define VTPM_PCI_TEST_POLL_NS_DEFAULT   200000
#define VTPM_PCI_TEST_POLL_NS_MAX       1000000

uint16_t vtpm_pci_port(QTestState *s);
uint32_t vtpm_pci_state(QTestState *s, uint16_t port);
void vtpm_pci_wait_done(QTestState *s, uint16_t port);
void vtpm_pci_write_command(QTestState *s, uint16_t port,
                            const unsigned char *req, size_t req_size);
size_t vtpm_pci_read_response(QTestState *s, uint16_t port,
                              unsigned char *rsp, size_t rsp_size);
/* One command through the card whose BAR 0 is at @port */
void vtpm_pci_transfer_at(QTestState *s, uint16_t port,
                          const unsigned char *req, size_t req_size,
                          unsigned char *rsp, size_t rsp_size);
void vtpm_pci_transfer(QTestState *s,
                       const unsigned char *req, size_t req_size,
                       unsigned char *rsp, size_t rsp_size);

/*
 * The address of BAR 2 of the one card; if it is not placed yet, place it
 * at VTPM_PCI_TEST_BUFFER; enable memory decode
 */
uint64_t vtpm_pci_buffer(QTestState *s);
/*
 * One command through BAR 2 (START_BUFFER), of the card whose BAR 0 is at
 * @port and BAR 2 at @buffer; the card stays COMPLETE
 */
void vtpm_pci_buffer_transfer_at(QTestState *s, uint16_t port,
                                 uint64_t buffer,
                                 const unsigned char *req, size_t req_size,
                                 unsigned char *rsp, size_t rsp_size);
void vtpm_pci_buffer_transfer(QTestState *s,
                              const unsigned char *req, size_t req_size,
                              unsigned char *rsp, size_t rsp_size);

/*
 * Wait for the migration on @s to end, and check that it ended in @status
 * ("completed" or "failed") and, if @reason, that its error says so
 */
void vtpm_pci_migration_assert_end(QTestState *s, const char *status,
                                   const char *reason);

/* Whether the QEMU under test has the libtpms TPM backend (-tpmdev libtpms) */
bool vtpm_pci_has_libtpms(void);

#endif /* TESTS_VTPM_PCI_UTIL_H */

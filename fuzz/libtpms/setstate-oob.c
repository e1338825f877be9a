/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libtpms 0.9.2 (Debian 12): TPMLIB_SetState() of a damaged TPM 2.0
 * permanent state reads out of bounds, some 60 KiB past the blob.
 * vtpm-pci-migration-fuzz found it; the blob is a real permanent state
 * with a few bytes changed (setstate-permanent-oob.bin).
 *
 *   cc -o setstate-oob setstate-oob.c -ltpms
 *   valgrind ./setstate-oob setstate-permanent-oob.bin
 *
 * valgrind reports "Invalid read of size 1" (and of size 2) inside
 * libtpms, called from TPMLIB_SetState; without valgrind the read
 * usually lands in mapped memory and the call returns 0x3
 * (TPM_BAD_PARAMETER), or it faults.
 */

#include <stdio.h>
#include <stdlib.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_error.h>

int main(int argc, char **argv)
{
    unsigned char *buf = malloc(1 << 20);
    uint32_t len;
    TPM_RESULT r;
    FILE *f;

    f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!buf || !f) {
        fprintf(stderr, "usage: %s BLOB\n", argv[0]);
        return 2;
    }
    len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2);
    r = TPMLIB_SetState(TPMLIB_STATE_PERMANENT, buf, len);
    printf("TPMLIB_SetState(PERMANENT, %u bytes): 0x%x\n", len, r);
    free(buf);
    return 0;
}

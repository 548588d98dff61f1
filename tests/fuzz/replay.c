/* Runs a fuzz harness once on each file given: the regression tests of past findings
 * (tests/fuzz/regress/<harness>/), built with the ordinary compiler for make test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kd_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int n = 0;
    for (int k = 1; k < argc; k++) {
        kd_buf b = { 0 };
        kd_err e;
        if (kd_read_all(argv[k], &b, &e)) {
            fprintf(stderr, "replay: %s\n", e.msg);
            return 1;
        }
        LLVMFuzzerTestOneInput(b.p, b.len);
        kd_buf_free(&b);
        n++;
    }
    printf("replay: %d inputs, no crash\n", n);
    return 0;
}

/* libFuzzer harness: kd-gen import's text readers.  The first byte picks the format and
 * options (format, --min-rating, --kcore, leave-one-out); the rest is the file. */
#include <stddef.h>
#include <stdint.h>

#include "kd_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    kd_import_params p = kd_import_defaults();
    p.format = data[0] & 3;
    p.use_min_rating = (data[0] >> 2) & 1;
    p.min_rating = 3;
    p.kcore = (data[0] >> 3) & 1 ? 2 : 0;
    p.leave_one_out = (data[0] >> 4) & 1;
    p.input_path = "fuzz";
    p.input_mem = data + 1;
    p.input_len = size - 1;
    kd_dataset d;
    kd_buf prov = { 0 };
    kd_err e;
    if (kd_import_run(&d, &p, &prov, &e) == 0) {
        kd_dataset_stats(&d, &prov);
        kd_dataset_free(&d);
    }
    kd_buf_free(&prov);
    return 0;
}
